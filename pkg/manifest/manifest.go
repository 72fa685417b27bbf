// Package manifest reads Kubernetes manifests — YAML or JSON files, multi-document, List objects,
// directories — into the typed objects of underlink's scheme, for the offline CLI and the shared case
// table. Kinds the scheme does not know come back as unstructured objects, so a caller can still name
// them.
package manifest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/underlink/underlink/api/scheme"
)

// MaxDocumentBytes bounds one YAML document; the apiserver refuses bigger requests anyway.
const MaxDocumentBytes = 3 << 20

// Object is one decoded manifest.
type Object struct {
	// Object is the typed object (e.g. *v2beta1.SpiderIPPool), or *unstructured.Unstructured for kinds
	// outside underlink's scheme.
	Object client.Object
	// Kind is the object's kind, e.g. SpiderIPPool.
	Kind string
	// Source is where it was read: "file.yaml#2" (the document's index, from 1), plus "[i]" inside a List.
	Source string
	// Warnings are fields the decoder dropped (unknown or duplicate), as the apiserver would warn.
	Warnings []string
}

// Ref is "Kind/namespace/name", or "Kind/name" for an object without a namespace.
func (o Object) Ref() string {
	if o.Object.GetNamespace() == "" {
		return o.Kind + "/" + o.Object.GetName()
	}
	return o.Kind + "/" + o.Object.GetNamespace() + "/" + o.Object.GetName()
}

// Decoder decodes manifests with underlink's scheme.
type Decoder struct {
	strict  runtime.Decoder
	lenient runtime.Decoder
}

// NewDecoder returns a decoder for underlink's scheme.
func NewDecoder() *Decoder {
	s := scheme.New()
	return &Decoder{
		strict:  serializer.NewCodecFactory(s, serializer.EnableStrict).UniversalDeserializer(),
		lenient: serializer.NewCodecFactory(s).UniversalDeserializer(),
	}
}

// ReadPaths reads files and directories in order; a directory contributes its .yaml, .yml and .json
// files, recursively, in lexical order (as kubectl apply -f DIR does). "-" reads stdin.
func (d *Decoder) ReadPaths(paths []string, stdin io.Reader) ([]Object, error) {
	var out []Object
	for _, p := range paths {
		if p == "-" {
			objs, err := d.Decode(stdin, "<stdin>")
			if err != nil {
				return nil, err
			}
			out = append(out, objs...)
			continue
		}
		files, err := expand(p)
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			objs, err := d.ReadFile(f)
			if err != nil {
				return nil, err
			}
			out = append(out, objs...)
		}
	}
	return out, nil
}

func expand(p string) ([]string, error) {
	st, err := os.Stat(p)
	if err != nil {
		return nil, fmt.Errorf("read manifests: %w", err)
	}
	if !st.IsDir() {
		return []string{p}, nil
	}
	var files []string
	err = filepath.WalkDir(p, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch strings.ToLower(filepath.Ext(path)) {
		case ".yaml", ".yml", ".json":
			if !e.IsDir() {
				files = append(files, path)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read manifests under %s: %w", p, err)
	}
	sort.Strings(files)
	return files, nil
}

// ReadFile decodes every document of one file.
func (d *Decoder) ReadFile(path string) ([]Object, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read manifests: %w", err)
	}
	defer f.Close()
	return d.Decode(f, path)
}

// Decode reads a stream of YAML or JSON documents. Empty documents are skipped; a document that is not
// a Kubernetes object is an error naming the source and the document's index.
func (d *Decoder) Decode(r io.Reader, source string) ([]Object, error) {
	reader := utilyaml.NewYAMLReader(bufio.NewReaderSize(r, 64<<10))
	var out []Object
	for i := 1; ; i++ {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s#%d: %w", source, i, err)
		}
		if len(doc) > MaxDocumentBytes {
			return nil, fmt.Errorf("%s#%d: document is %d bytes, more than %d", source, i, len(doc), MaxDocumentBytes)
		}
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		js, err := utilyaml.ToJSON(doc)
		if err != nil {
			return nil, fmt.Errorf("%s#%d: not YAML: %w", source, i, err)
		}
		if string(bytes.TrimSpace(js)) == "null" {
			continue
		}
		objs, err := d.decodeJSON(js, fmt.Sprintf("%s#%d", source, i))
		if err != nil {
			return nil, err
		}
		out = append(out, objs...)
	}
}

func stripComments(doc []byte) []byte {
	var b bytes.Buffer
	for _, l := range bytes.Split(doc, []byte("\n")) {
		if t := bytes.TrimSpace(l); len(t) > 0 && t[0] != '#' {
			b.Write(l)
			b.WriteByte('\n')
		}
	}
	return b.Bytes()
}

// decodeJSON decodes one object, expanding Lists.
func (d *Decoder) decodeJSON(js []byte, source string) ([]Object, error) {
	var head struct {
		APIVersion string            `json:"apiVersion"`
		Kind       string            `json:"kind"`
		Items      []json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal(js, &head); err != nil {
		return nil, fmt.Errorf("%s: not a Kubernetes object: %w", source, err)
	}
	if head.Kind == "" || head.APIVersion == "" {
		return nil, fmt.Errorf("%s: not a Kubernetes object: apiVersion and kind are required", source)
	}
	if strings.HasSuffix(head.Kind, "List") && head.Items != nil {
		var out []Object
		for i, item := range head.Items {
			objs, err := d.decodeJSON(item, fmt.Sprintf("%s[%d]", source, i))
			if err != nil {
				return nil, err
			}
			out = append(out, objs...)
		}
		return out, nil
	}
	obj, gvk, err := d.strict.Decode(js, nil, nil)
	var warnings []string
	if se, ok := runtime.AsStrictDecodingError(err); ok {
		for _, e := range se.Errors() {
			warnings = append(warnings, e.Error())
		}
		obj, gvk, err = d.lenient.Decode(js, nil, nil)
	}
	if err != nil {
		if runtime.IsNotRegisteredError(err) {
			u := &unstructured.Unstructured{}
			if uerr := u.UnmarshalJSON(js); uerr != nil {
				return nil, fmt.Errorf("%s: %w", source, uerr)
			}
			defaultNamespace(u, u.GetKind())
			return []Object{{Object: u, Kind: u.GetKind(), Source: source}}, nil
		}
		return nil, fmt.Errorf("%s: %s %s does not decode: %w", source, head.APIVersion, head.Kind, err)
	}
	co, ok := obj.(client.Object)
	if !ok {
		return nil, fmt.Errorf("%s: %s is not an object with metadata", source, gvk.Kind)
	}
	defaultNamespace(co, gvk.Kind)
	return []Object{{Object: co, Kind: gvk.Kind, Source: source, Warnings: warnings}}, nil
}

// defaultNamespace gives a namespaced object without a namespace the default one, as kubectl does
// with the current context's namespace ("default"), so refs name the object as the apiserver will.
func defaultNamespace(o client.Object, kind string) {
	if o.GetNamespace() == "" && !ClusterScoped[kind] {
		o.SetNamespace(metav1.NamespaceDefault)
	}
}

// ClusterScoped are the cluster-scoped kinds a manifest commonly holds. Without an apiserver to ask,
// every other kind is taken as namespaced.
var ClusterScoped = map[string]bool{
	"SpiderIPPool": true, "SpiderSubnet": true, "Namespace": true, "Node": true, "PersistentVolume": true,
	"ClusterRole": true, "ClusterRoleBinding": true, "StorageClass": true, "CustomResourceDefinition": true,
	"PriorityClass": true, "ValidatingWebhookConfiguration": true, "MutatingWebhookConfiguration": true,
	"APIService": true, "IngressClass": true, "RuntimeClass": true, "CSIDriver": true, "CSINode": true,
	"VolumeAttachment": true, "ValidatingAdmissionPolicy": true, "ValidatingAdmissionPolicyBinding": true,
	"MutatingAdmissionPolicy": true, "MutatingAdmissionPolicyBinding": true, "ClusterIssuer": true,
}
