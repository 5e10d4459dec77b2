package main

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// The protobuf wire format of the few demo.proto fields the server reads and writes. Field
// numbers are those of proto/demo/v1/demo.proto; every other field is skipped by its wire type.

// request is what the server reads of a demo.v1.ProcessRequest.
type request struct {
	id                string // 1
	payloadLength     uint64 // 2 (its length only)
	latencyMs         uint64 // 3
	failCode          uint64 // 4
	failFirstAttempts uint64 // 5
}

var errTruncated = errors.New("demo.v1.ProcessRequest: truncated message")

func (r *request) parse(data []byte) error {
	for len(data) > 0 {
		key, n := binary.Uvarint(data)
		if n <= 0 {
			return errTruncated
		}
		data = data[n:]
		field, wireType := key>>3, key&7
		switch wireType {
		case 0: // varint
			value, n := binary.Uvarint(data)
			if n <= 0 {
				return errTruncated
			}
			data = data[n:]
			switch field {
			case 3:
				r.latencyMs = value
			case 4:
				r.failCode = value
			case 5:
				r.failFirstAttempts = value
			}
		case 1: // 64-bit
			if len(data) < 8 {
				return errTruncated
			}
			data = data[8:]
		case 2: // length-delimited
			length, n := binary.Uvarint(data)
			if n <= 0 || uint64(len(data)-n) < length {
				return errTruncated
			}
			value := data[n : n+int(length)]
			data = data[n+int(length):]
			switch field {
			case 1:
				r.id = string(value)
			case 2:
				r.payloadLength = uint64(len(value))
			}
		case 5: // 32-bit
			if len(data) < 4 {
				return errTruncated
			}
			data = data[4:]
		default:
			return fmt.Errorf("demo.v1.ProcessRequest: unsupported wire type %d", wireType)
		}
	}
	return nil
}

// response is a demo.v1.ProcessResponse.
type response struct {
	id             string // 1
	attempt        uint64 // 2
	payloadLength  uint64 // 3
	echoedMetadata string // 4
}

func (r *response) appendTo(b []byte) []byte {
	b = appendString(b, 1, r.id)
	b = appendVarint(b, 2, r.attempt)
	b = appendVarint(b, 3, r.payloadLength)
	return appendString(b, 4, r.echoedMetadata)
}

// batchResponse is a demo.v1.ProcessBatchResponse.
type batchResponse struct {
	count          uint64   // 1
	ids            []string // 2
	payloadLength  uint64   // 3
	echoedMetadata string   // 4
}

func (r *batchResponse) appendTo(b []byte) []byte {
	b = appendVarint(b, 1, r.count)
	for _, id := range r.ids {
		b = appendBytes(b, 2, id)
	}
	b = appendVarint(b, 3, r.payloadLength)
	return appendString(b, 4, r.echoedMetadata)
}

// proto3: a zero scalar or an empty string is not written.
func appendVarint(b []byte, field int, value uint64) []byte {
	if value == 0 {
		return b
	}
	b = binary.AppendUvarint(b, uint64(field)<<3)
	return binary.AppendUvarint(b, value)
}

func appendString(b []byte, field int, value string) []byte {
	if value == "" {
		return b
	}
	return appendBytes(b, field, value)
}

// appendBytes writes a length-delimited field even when empty (a repeated string keeps its empty items).
func appendBytes(b []byte, field int, value string) []byte {
	b = binary.AppendUvarint(b, uint64(field)<<3|2)
	b = binary.AppendUvarint(b, uint64(len(value)))
	return append(b, value...)
}
