module example.invalid/ingesta/sdk/go

go 1.27.1

require go.bytecodealliance.org/pkg v0.4.0
