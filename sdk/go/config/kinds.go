package config

import "reflect"

type valueKind uint8

const (
	kString valueKind = iota
	kBool
	kInt
	kUint
	kFloat
)

func kind[T Value](v T) valueKind {
	switch reflect.TypeOf(v).Kind() {
	case reflect.String:
		return kString
	case reflect.Bool:
		return kBool
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return kInt
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return kUint
	default:
		return kFloat
	}
}

func bits[T Value](v T) int {
	return reflect.TypeOf(v).Bits()
}

func convertString[T Value](s string) T {
	var v T
	reflect.ValueOf(&v).Elem().SetString(s)
	return v
}

func convertBool[T Value](b bool) T {
	var v T
	reflect.ValueOf(&v).Elem().SetBool(b)
	return v
}

func convertInt[T Value](n int64) T {
	var v T
	reflect.ValueOf(&v).Elem().SetInt(n)
	return v
}

func convertUint[T Value](n uint64) T {
	var v T
	reflect.ValueOf(&v).Elem().SetUint(n)
	return v
}

func convertFloat[T Value](f float64) T {
	var v T
	reflect.ValueOf(&v).Elem().SetFloat(f)
	return v
}
