package agentclient

import (
	"reflect"
	"testing"

	"github.com/vigil-cdp/vigil/pkg/agentclient/openapitest"
)

func TestTypesMatchOpenAPI(t *testing.T) {
	doc := openapitest.Load(t)
	for name, typ := range map[string]reflect.Type{
		"ControlRequest": reflect.TypeFor[ControlRequest](),
		"StartResult":    reflect.TypeFor[StartResult](),
		"StopResult":     reflect.TypeFor[StopResult](),
		"Events":         reflect.TypeFor[Events](),
		"Event":          reflect.TypeFor[Event](),
	} {
		t.Run(name, func(t *testing.T) { doc.Check(t, name, typ) })
	}
}
