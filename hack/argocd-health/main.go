// argocd-health runs an Argo CD resource health check (a Lua script in the form of argocd-cm's
// resource.customizations.health.<group>_<kind>) against one Kubernetes object, with the Lua
// engine Argo CD uses (gopher-lua, at the version Argo CD pins), and prints the health as JSON:
//
//	argocd-health SCRIPT.lua [OBJECT.json]   # the object from the file, or from standard input
//	{"status":"Healthy","message":"..."}
//
// It evaluates the way Argo CD's application controller does for a script from argocd-cm:
//   - an object being deleted is Progressing ("Pending deletion") without running the script;
//   - the object is decoded as Kubernetes decodes unstructured JSON (integers as int64, other
//     numbers as float64, null as nil) and handed to the script as the global `obj`, maps as
//     tables with string keys and lists as sequences starting at 1;
//   - only the base, package and table libraries are open (no string, math, io or os: argocd-cm
//     scripts run without the standard libraries unless useOpenLibs is set); Argo CD adds a reduced
//     os (time, date) that roster's scripts do not use, so it is left out here;
//   - a script gets one second;
//   - the returned table is encoded with gopher-json and read as {status, message}; a status that is
//     not one of Argo CD's is Unknown ("Lua returned an invalid health status"); nil is an empty
//     health; a script error is Unknown with the error as the message (and exit status 1 here).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	lua "github.com/yuin/gopher-lua"
	luajson "layeh.com/gopher-json"
)

type health struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

var statuses = map[string]bool{
	"Unknown": true, "Progressing": true, "Suspended": true,
	"Healthy": true, "Degraded": true, "Missing": true,
}

func main() {
	if len(os.Args) < 2 || len(os.Args) > 3 {
		fmt.Fprintln(os.Stderr, "usage: argocd-health SCRIPT.lua [OBJECT.json]")
		os.Exit(2)
	}
	script, err := os.ReadFile(os.Args[1])
	if err != nil {
		fail(err)
	}
	var in io.Reader = os.Stdin
	if len(os.Args) == 3 {
		f, err := os.Open(os.Args[2])
		if err != nil {
			fail(err)
		}
		defer f.Close()
		in = f
	}
	raw, err := io.ReadAll(in)
	if err != nil {
		fail(err)
	}
	obj, err := decodeObject(raw)
	if err != nil {
		fail(fmt.Errorf("the object is not a JSON object: %w", err))
	}
	h, err := evaluate(obj, string(script))
	if err != nil {
		emit(health{Status: "Unknown", Message: err.Error()})
		os.Exit(1)
	}
	emit(h)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "argocd-health:", err)
	os.Exit(2)
}

func emit(h health) {
	out, _ := json.Marshal(h)
	fmt.Println(string(out))
}

// decodeObject decodes JSON as Kubernetes' unstructured decoder does: integers become int64 and
// other numbers float64.
func decodeObject(raw []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil {
		return nil, err
	}
	if obj == nil {
		return nil, fmt.Errorf("null")
	}
	return numbers(obj).(map[string]any), nil
}

func numbers(v any) any {
	switch v := v.(type) {
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return i
		}
		f, _ := v.Float64()
		return f
	case []any:
		for i := range v {
			v[i] = numbers(v[i])
		}
	case map[string]any:
		for k := range v {
			v[k] = numbers(v[k])
		}
	}
	return v
}

// toLua turns a decoded value into a Lua value: tables for maps and lists, nil for null.
func toLua(l *lua.LState, v any) lua.LValue {
	switch v := v.(type) {
	case bool:
		return lua.LBool(v)
	case string:
		return lua.LString(v)
	case int64:
		return lua.LNumber(v)
	case float64:
		return lua.LNumber(v)
	case []any:
		t := l.CreateTable(len(v), 0)
		for _, item := range v {
			t.Append(toLua(l, item))
		}
		return t
	case map[string]any:
		t := l.CreateTable(0, len(v))
		for k, item := range v {
			t.RawSetH(lua.LString(k), toLua(l, item))
		}
		return t
	}
	return lua.LNil
}

func evaluate(obj map[string]any, script string) (health, error) {
	if meta, ok := obj["metadata"].(map[string]any); ok && meta["deletionTimestamp"] != nil {
		return health{Status: "Progressing", Message: "Pending deletion"}, nil
	}
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for name, open := range map[string]lua.LGFunction{
		lua.LoadLibName: lua.OpenPackage,
		lua.BaseLibName: lua.OpenBase,
		lua.TabLibName:  lua.OpenTable,
	} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(open), Protect: true}, lua.LString(name)); err != nil {
			return health{}, err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("obj", toLua(l, obj))
	if err := l.DoString(script); err != nil {
		return health{}, err
	}
	ret := l.Get(-1)
	switch ret.Type() {
	case lua.LTNil:
		return health{}, nil
	case lua.LTTable:
	default:
		return health{}, fmt.Errorf("expect table output from Lua script, not %s", ret.Type())
	}
	encoded, err := luajson.Encode(ret)
	if err != nil {
		return health{}, err
	}
	var h health
	if err := json.Unmarshal(encoded, &h); err != nil {
		// An empty table encodes as [], which Argo CD takes for an empty health.
		if _, isArray := err.(*json.UnmarshalTypeError); isArray {
			return health{}, nil
		}
		return health{}, err
	}
	if !statuses[h.Status] {
		return health{Status: "Unknown", Message: "Lua returned an invalid health status"}, nil
	}
	return h, nil
}
