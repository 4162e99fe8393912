module example.invalid/ingesta/tests/conformance/go/beacon

go 1.27.1

require example.invalid/ingesta/sdk/go v0.0.0

require go.bytecodealliance.org/pkg v0.4.0 // indirect

replace example.invalid/ingesta/sdk/go => ../../../../sdk/go
