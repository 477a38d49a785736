package response

import (
	"reflect"
	"testing"

	"github.com/vigil-cdp/vigil/pkg/agentclient/openapitest"
)

// The parser's types are the contract's: a change to agent/openapi.json that
// the monitor does not follow fails here.
func TestTypesMatchOpenAPI(t *testing.T) {
	doc := openapitest.Load(t)
	doc.Check(t, "Status", reflect.TypeFor[Status]())
	doc.Check(t, "Process", reflect.TypeFor[Process]())
}
