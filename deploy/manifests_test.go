package deploy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

func manifests(t *testing.T) []string {
	t.Helper()
	m, err := filepath.Glob("*.yaml")
	if err != nil || len(m) == 0 {
		t.Fatalf("no manifests in deploy/: %v", err)
	}
	return m
}

// TestManifestsDecode: each manifest is valid against the API types, and
// each pod runs loftd as the deployment needs it.
func TestManifestsDecode(t *testing.T) {
	for _, name := range manifests(t) {
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			objs, err := Decode(data)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			for _, o := range objs {
				var spec *corev1.PodSpec
				switch o := o.(type) {
				case *batchv1.Job:
					spec = &o.Spec.Template.Spec
					if o.Spec.BackoffLimit == nil || *o.Spec.BackoffLimit != 0 {
						t.Errorf("%s: a Job's backoffLimit must be 0: a failing workload is a result, not a flake to retry", name)
					}
					if spec.RestartPolicy != corev1.RestartPolicyNever {
						t.Errorf("%s: restartPolicy %q, want Never (the pod's status is the workload's)", name, spec.RestartPolicy)
					}
				case *appsv1.StatefulSet:
					spec = &o.Spec.Template.Spec
					if o.Spec.Replicas == nil || *o.Spec.Replicas != 1 {
						t.Errorf("%s: a workspace StatefulSet has one replica (its disks allow one writer)", name)
					}
					claims := map[string]bool{}
					for _, c := range o.Spec.VolumeClaimTemplates {
						claims[c.Name] = true
					}
					if !claims["workspace"] || !claims["state"] {
						t.Errorf("%s: want PVCs for the workspace and the state, have %v", name, claims)
					}
				}
				if spec != nil {
					checkPod(t, name, spec)
				}
			}
		})
	}
}

// checkPod: the loftd container gets its size from the Downward API, asks
// for /dev/kvm, is not privileged, and the pod uses user namespaces.
func checkPod(t *testing.T, name string, spec *corev1.PodSpec) {
	t.Helper()
	if spec.HostUsers == nil || *spec.HostUsers {
		t.Errorf("%s: hostUsers must be false (Kubernetes user namespaces)", name)
	}
	var c *corev1.Container
	for i := range spec.Containers {
		if spec.Containers[i].Name == "loftd" {
			c = &spec.Containers[i]
		}
	}
	if c == nil {
		t.Fatalf("%s: no container named loftd", name)
	}
	if !strings.Contains(c.Image, "loftd-runner") {
		t.Errorf("%s: the loftd container runs %q, want the runner image", name, c.Image)
	}
	env := map[string]string{}
	for _, e := range c.Env {
		if e.ValueFrom != nil && e.ValueFrom.ResourceFieldRef != nil {
			env[e.Name] = e.ValueFrom.ResourceFieldRef.Resource
		}
	}
	if env["LOFTD_CPUS"] != "limits.cpu" || env["LOFTD_MEMORY"] != "limits.memory" {
		t.Errorf("%s: want LOFTD_CPUS and LOFTD_MEMORY from the Downward API's limits, have %v", name, env)
	}
	if _, ok := c.Resources.Limits["devices.kubevirt.io/kvm"]; !ok {
		t.Errorf("%s: the loftd container does not ask for /dev/kvm from a device plugin", name)
	}
	if sc := c.SecurityContext; sc == nil || (sc.Privileged != nil && *sc.Privileged) {
		t.Errorf("%s: the loftd container must have a securityContext and not be privileged", name)
	}
	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		mounts[m.MountPath] = m.Name
	}
	if mounts["/var/lib/loftd"] == "" {
		t.Errorf("%s: no volume at /var/lib/loftd (the state directory: images and disks)", name)
	}
}

// TestDecodeRefuses: the check can fail, on the mistakes it exists for.
func TestDecodeRefuses(t *testing.T) {
	tests := []struct{ name, doc, want string }{
		{"misspelt field", "apiVersion: batch/v1\nkind: Job\nspec:\n  backofLimit: 0\n", "unknown field"},
		{"field at the wrong level", "apiVersion: apps/v1\nkind: StatefulSet\nspec:\n  template:\n    spec:\n      containers:\n      - name: x\n        hostUsers: false\n", "unknown field"},
		{"wrong type", "apiVersion: batch/v1\nkind: Job\nspec:\n  backoffLimit: zero\n", "cannot unmarshal"},
		{"unknown kind", "apiVersion: v1\nkind: Pod\n", "not a kind"},
	}
	for _, tt := range tests {
		if _, err := Decode([]byte(tt.doc)); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Decode = %v, want an error with %q", tt.name, err, tt.want)
		}
	}
}
