package main

// Kubernetes memory quantities: the plain forms pods use (digits and a suffix), their value
// in bytes, and apimachinery's canonical String() of a whole number of bytes. Written from the
// Kubernetes documentation of resource.Quantity, not from the webhook's code.

import (
	"fmt"
	"math"
	"math/bits"
	"strconv"
	"strings"
)

type format int

const (
	decimalSI format = iota
	binarySI
)

type quantity struct {
	bytes  int64
	format format
}

var binaryShifts = map[string]uint{"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
var decimalExponents = map[string]int{"": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
var binaryNames = []string{"", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"}
var decimalNames = map[int]string{0: "", 3: "k", 6: "M", 9: "G", 12: "T", 15: "P", 18: "E"}

// parseQuantity reads "512Mi", "2G", "1073741824": up to 18 digits and a binary or decimal
// suffix that makes a whole number of bytes. Other forms (signs, fractions, exponents, milli)
// are valid Kubernetes quantities that this reference does not read: an error.
func parseQuantity(text string) (quantity, error) {
	digits := strings.TrimRight(text, "KMGTPEik")
	suffix := text[len(digits):]
	if len(digits) == 0 || len(digits) > 18 || strings.Trim(digits, "0123456789") != "" {
		return quantity{}, fmt.Errorf("%q: not a plain whole-byte quantity", text)
	}
	mantissa, err := strconv.ParseInt(digits, 10, 64)
	if err != nil {
		return quantity{}, fmt.Errorf("%q: %v", text, err)
	}
	if shift, ok := binaryShifts[suffix]; ok {
		if bits.Len64(uint64(mantissa))+int(shift) > 63 {
			return quantity{}, fmt.Errorf("%q: more bytes than an int64 holds", text)
		}
		return quantity{mantissa << shift, binarySI}, nil
	}
	exponent, ok := decimalExponents[suffix]
	if !ok {
		return quantity{}, fmt.Errorf("%q: unknown suffix %q", text, suffix)
	}
	value := mantissa
	for i := 0; i < exponent; i++ {
		if value > math.MaxInt64/10 {
			return quantity{}, fmt.Errorf("%q: more bytes than an int64 holds", text)
		}
		value *= 10
	}
	return quantity{value, decimalSI}, nil
}

// formatBytes is Quantity.String() of a whole, non-negative number of bytes: the largest
// binary suffix that divides it (BinarySI, from 1Ki up), else the largest power of 1000.
func formatBytes(count int64, f format) string {
	if count == 0 {
		return "0"
	}
	if f == binarySI && count >= 1024 {
		power := 0
		for count%1024 == 0 && power < len(binaryNames)-1 {
			count /= 1024
			power++
		}
		return strconv.FormatInt(count, 10) + binaryNames[power]
	}
	exponent := 0
	for count%10 == 0 {
		count /= 10
		exponent++
	}
	for exponent%3 != 0 {
		count *= 10
		exponent--
	}
	return strconv.FormatInt(count, 10) + decimalNames[exponent]
}

// plus is Quantity.Add of a whole number of bytes, printed in the quantity's own format (a
// zero quantity prints as BinarySI, as the sum of a zero and bytes does in apimachinery).
func (q quantity) plus(count int64) string {
	f := q.format
	if q.bytes == 0 {
		f = binarySI
	}
	return formatBytes(q.bytes+count, f)
}
