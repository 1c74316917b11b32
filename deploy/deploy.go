// Package deploy holds loftd's runner image recipe (Containerfile) and its
// Kubernetes manifests (*.yaml), and reads them as the Kubernetes API types
// for the tests: the manifests' own (TestManifestsDecode) and the e2e test
// that plays them with Podman. No loftd binary links it.
package deploy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// kinds are the objects deploy/ may hold, as apiVersion/kind.
var kinds = map[string]func() any{
	"batch/v1/Job":             func() any { return &batchv1.Job{} },
	"apps/v1/StatefulSet":      func() any { return &appsv1.StatefulSet{} },
	"v1/PersistentVolumeClaim": func() any { return &corev1.PersistentVolumeClaim{} },
	"v1/Service":               func() any { return &corev1.Service{} },
	"v1/Secret":                func() any { return &corev1.Secret{} },
	"v1/ConfigMap":             func() any { return &corev1.ConfigMap{} },
}

// Decode reads every YAML document of a manifest into its Kubernetes API
// type, refusing unknown fields (a misspelt key is a silently ignored
// setting on a real cluster).
func Decode(data []byte) ([]any, error) {
	var out []any
	for i, doc := range bytes.Split(data, []byte("\n---")) {
		js, err := yaml.YAMLToJSON(doc)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if string(js) == "null" {
			continue
		}
		var head struct{ APIVersion, Kind string }
		if err := json.Unmarshal(js, &head); err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		mk, ok := kinds[head.APIVersion+"/"+head.Kind]
		if !ok {
			return nil, fmt.Errorf("document %d: %s %s is not a kind deploy/ may hold", i, head.APIVersion, head.Kind)
		}
		obj := mk()
		dec := json.NewDecoder(bytes.NewReader(js))
		dec.DisallowUnknownFields()
		if err := dec.Decode(obj); err != nil {
			return nil, fmt.Errorf("document %d (%s): %w", i, head.Kind, err)
		}
		out = append(out, obj)
	}
	return out, nil
}

// Manifest reads the manifest file name of deploy/ (dir is deploy/'s path).
func Manifest(dir, name string) ([]any, error) {
	data, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return nil, err
	}
	objs, err := Decode(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return objs, nil
}

// PodOf is the pod a Job or StatefulSet runs, as a Pod named name: what a
// test plays where the kind itself is not known (Podman 4.3's kube play
// knows Pod and Deployment, not Job or StatefulSet).
func PodOf(obj any, name string) (*corev1.Pod, error) {
	var tmpl corev1.PodTemplateSpec
	switch o := obj.(type) {
	case *batchv1.Job:
		tmpl = o.Spec.Template
	case *appsv1.StatefulSet:
		tmpl = o.Spec.Template
	default:
		return nil, fmt.Errorf("%T runs no pod", obj)
	}
	pod := &corev1.Pod{ObjectMeta: tmpl.ObjectMeta, Spec: *tmpl.Spec.DeepCopy()}
	pod.APIVersion, pod.Kind, pod.Name = "v1", "Pod", name
	return pod, nil
}

// YAML renders obj as a manifest.
func YAML(obj any) ([]byte, error) { return yaml.Marshal(obj) }
