// Package manifest reads Kubernetes manifests — YAML or JSON files, multi-document, concatenated JSON
// objects, List objects, directories — into the typed objects of underlink's scheme, for the offline
// CLI and the shared case table. Kinds the scheme does not know come back as unstructured objects, so a
// caller can still name them. Each object knows its file, document and line, and the line of any of its
// fields (LineOf), so findings can point into the file.
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
	"slices"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
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
	// File is the file it was read from ("<stdin>" for standard input), Document the document's index
	// in it (from 1; each of several concatenated JSON objects counts as one), and Line the line of the
	// file where the document starts (from 1).
	File     string
	Document int
	Line     int
	// Warnings are fields the decoder dropped (unknown or duplicate), as the apiserver would warn.
	Warnings []string

	// doc is the document's text, items the List indexes down to the object, for LineOf.
	doc   []byte
	items []int
}

// LineOf returns the line of the file where the field at path (a field.Path string such as
// spec.ips[0] or metadata.annotations[v1.multus-cni.io/default-network]) is written, or, when it is not
// written (a missing field), the line of its nearest written parent; the object's own line for "".
func (o Object) LineOf(path string) int {
	if o.doc == nil {
		return o.Line
	}
	var root yaml.Node
	if err := yaml.Unmarshal(o.doc, &root); err != nil || len(root.Content) == 0 {
		return o.Line
	}
	n := root.Content[0]
	for _, i := range o.items {
		_, items := entry(n, "items")
		if items == nil || items.Kind != yaml.SequenceNode || i >= len(items.Content) {
			return o.Line
		}
		n = items.Content[i]
	}
	line := n.Line
	for _, seg := range splitPath(path) {
		var next *yaml.Node
		if seg.index >= 0 {
			if n.Kind == yaml.SequenceNode && seg.index < len(n.Content) {
				next = n.Content[seg.index]
			}
		} else if key, value := entry(n, seg.name); key != nil {
			line, next = key.Line, value
		}
		if next == nil {
			break
		}
		n = next
		if seg.index >= 0 {
			line = n.Line
		}
	}
	return o.Line + line - firstContentLine(o.doc)
}

// segment is one step of a field path: a name (a field or a map key) or a list index.
type segment struct {
	name  string
	index int
}

// splitPath reads a field.Path string: names separated by dots, then [index] or [key] steps, whose keys
// may hold dots and slashes.
func splitPath(path string) []segment {
	var out []segment
	for len(path) > 0 {
		switch path[0] {
		case '.':
			path = path[1:]
		case '[':
			end := strings.IndexByte(path, ']')
			if end < 0 {
				return out
			}
			inner := path[1:end]
			if i, err := strconv.Atoi(inner); err == nil {
				out = append(out, segment{index: i})
			} else {
				out = append(out, segment{name: inner, index: -1})
			}
			path = path[end+1:]
		default:
			end := strings.IndexAny(path, ".[")
			if end < 0 {
				end = len(path)
			}
			out = append(out, segment{name: path[:end], index: -1})
			path = path[end:]
		}
	}
	return out
}

// entry is the key and the value of a mapping node's entry name, or nils.
func entry(n *yaml.Node, name string) (key, value *yaml.Node) {
	if n.Kind != yaml.MappingNode {
		return nil, nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == name {
			return n.Content[i], n.Content[i+1]
		}
	}
	return nil, nil
}

// firstContentLine is the line of doc (from 1) holding its first character that is neither white
// space nor in a comment: the line YAML places the document's root on.
func firstContentLine(doc []byte) int {
	line := 1
	for _, l := range bytes.SplitAfter(doc, []byte("\n")) {
		if t := bytes.TrimSpace(l); len(t) > 0 && t[0] != '#' {
			return line
		}
		line++
	}
	return 1
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

// Decode reads a stream of YAML or JSON documents: documents separated by "---" lines, and JSON
// objects one after another (as `kubectl get -o json` of several objects writes them), each a document
// of its own. Empty documents are skipped; a document that is not a Kubernetes object is an error naming
// the source and the document's index.
func (d *Decoder) Decode(r io.Reader, source string) ([]Object, error) {
	docs := newDocReader(r)
	var out []Object
	for i := 1; ; i++ {
		doc, line, err := docs.next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s#%d: %w", source, i, err)
		}
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		if values := jsonValues(doc); len(values) > 1 {
			for j, v := range values {
				at := Object{File: source, Document: i + j, Line: line + bytes.Count(doc[:v.offset], []byte("\n")), doc: v.text}
				objs, err := d.decodeJSON(v.text, at, fmt.Sprintf("%s#%d", source, i+j), nil)
				if err != nil {
					return nil, err
				}
				out = append(out, objs...)
			}
			i += len(values) - 1
			continue
		}
		js, err := utilyaml.ToJSON(doc)
		if err != nil {
			return nil, fmt.Errorf("%s#%d: not YAML: %w", source, i, err)
		}
		if string(bytes.TrimSpace(js)) == "null" {
			continue
		}
		at := Object{File: source, Document: i, Line: line + firstContentLine(doc) - 1, doc: doc}
		objs, err := d.decodeJSON(js, at, fmt.Sprintf("%s#%d", source, i), nil)
		if err != nil {
			return nil, err
		}
		out = append(out, objs...)
	}
}

// jsonValue is one JSON value of a document and its byte offset there.
type jsonValue struct {
	text   []byte
	offset int
}

// jsonValues splits a document that is two or more JSON objects one after another into them; for
// anything else (one object, YAML, broken JSON) it returns at most one value and the caller reads the
// document as YAML, which JSON is.
func jsonValues(doc []byte) []jsonValue {
	t := bytes.TrimLeft(doc, " \t\r\n")
	if len(t) == 0 || t[0] != '{' {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(doc))
	var out []jsonValue
	for {
		start := int(dec.InputOffset())
		var v json.RawMessage
		if err := dec.Decode(&v); errors.Is(err, io.EOF) {
			return out
		} else if err != nil {
			return nil
		}
		start += len(doc[start:]) - len(bytes.TrimLeft(doc[start:], " \t\r\n"))
		out = append(out, jsonValue{text: v, offset: start})
	}
}

// docReader splits a stream into YAML documents at "---" lines, as kubectl does
// (k8s.io/apimachinery/pkg/util/yaml.YAMLReader), and tells the line each starts on.
type docReader struct {
	r *bufio.Reader
	// line is the number of the next line to read, from 1.
	line int
	eof  bool
}

func newDocReader(r io.Reader) *docReader {
	return &docReader{r: bufio.NewReaderSize(r, 64<<10), line: 1}
}

// next returns the next non-empty document and the line of the file it starts on. A document over
// MaxDocumentBytes is an error as soon as it is read that far.
func (d *docReader) next() ([]byte, int, error) {
	var buf bytes.Buffer
	start := d.line
	for !d.eof {
		line, err := d.r.ReadSlice('\n')
		for errors.Is(err, bufio.ErrBufferFull) {
			buf.Write(line)
			if buf.Len() > MaxDocumentBytes {
				return nil, 0, fmt.Errorf("document is more than %d bytes", MaxDocumentBytes)
			}
			line, err = d.r.ReadSlice('\n')
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, 0, err
		}
		d.eof = errors.Is(err, io.EOF)
		if len(line) == 0 && d.eof {
			break
		}
		d.line++
		if rest, ok := bytes.CutPrefix(line, []byte("---")); ok {
			if t := bytes.TrimSpace(rest); len(t) > 0 && t[0] != '#' {
				return nil, 0, fmt.Errorf("invalid YAML document separator: %s", t)
			}
			if buf.Len() > 0 {
				return buf.Bytes(), start, nil
			}
			start = d.line
			continue
		}
		buf.Write(line)
		if !bytes.HasSuffix(line, []byte("\n")) {
			buf.WriteByte('\n')
		}
		if buf.Len() > MaxDocumentBytes {
			return nil, 0, fmt.Errorf("document is more than %d bytes", MaxDocumentBytes)
		}
	}
	if buf.Len() > 0 {
		return buf.Bytes(), start, nil
	}
	return nil, 0, io.EOF
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

// decodeJSON decodes one object, expanding Lists; at holds its file, document, line and text, items
// the List indexes down to it.
func (d *Decoder) decodeJSON(js []byte, at Object, source string, items []int) ([]Object, error) {
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
			objs, err := d.decodeJSON(item, at, fmt.Sprintf("%s[%d]", source, i), append(slices.Clip(items), i))
			if err != nil {
				return nil, err
			}
			out = append(out, objs...)
		}
		return out, nil
	}
	at.Source, at.items = source, items
	obj, gvk, err := d.strict.Decode(js, nil, nil)
	if se, ok := runtime.AsStrictDecodingError(err); ok {
		for _, e := range se.Errors() {
			at.Warnings = append(at.Warnings, e.Error())
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
			at.Object, at.Kind, at.Warnings = u, u.GetKind(), nil
			return []Object{at}, nil
		}
		return nil, fmt.Errorf("%s: %s %s does not decode: %w", source, head.APIVersion, head.Kind, err)
	}
	co, ok := obj.(client.Object)
	if !ok {
		return nil, fmt.Errorf("%s: %s is not an object with metadata", source, gvk.Kind)
	}
	defaultNamespace(co, gvk.Kind)
	at.Object, at.Kind = co, gvk.Kind
	return []Object{at}, nil
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
	"SpiderIPPool": true, "SpiderSubnet": true, "SpiderReservedIP": true, "SpiderCoordinator": true, "Namespace": true, "Node": true, "PersistentVolume": true,
	"ClusterRole": true, "ClusterRoleBinding": true, "StorageClass": true, "CustomResourceDefinition": true,
	"PriorityClass": true, "ValidatingWebhookConfiguration": true, "MutatingWebhookConfiguration": true,
	"APIService": true, "IngressClass": true, "RuntimeClass": true, "CSIDriver": true, "CSINode": true,
	"VolumeAttachment": true, "ValidatingAdmissionPolicy": true, "ValidatingAdmissionPolicyBinding": true,
	"MutatingAdmissionPolicy": true, "MutatingAdmissionPolicyBinding": true, "ClusterIssuer": true,
}
