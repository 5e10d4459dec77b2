"""Python grpc.aio client for the bench: `concurrency` calls in flight over one channel.

Usage: aio_client.py <address> <latency_ms> <calls> <concurrency>
Prints one JSON line {calls, ok, ms, rate, cpuUsPerCall, secondHalfRate}, or {"skipped": why} when grpcio is missing.
The request is hand-encoded protobuf (demo.v1.ProcessRequest), so no generated stubs are needed.
"""
import asyncio
import json
import sys
import time

try:
    import grpc
    from grpc import aio
except ImportError:
    print(json.dumps({"skipped": "python3-grpcio is not installed (apt-get install -y python3-grpcio)"}))
    sys.exit(0)


def varint(value):
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def field_bytes(number, data):
    return varint(number << 3 | 2) + varint(len(data)) + data


def encode_request(record_id, payload, latency_ms):
    body = field_bytes(1, record_id.encode()) + field_bytes(2, payload.encode())
    if latency_ms:
        body += varint(3 << 3) + varint(latency_ms)
    return body


async def main(address, latency_ms, calls, concurrency):
    request = encode_request("bench", "record 1", latency_ms)
    counts = {"started": 0, "ok": 0, "done": 0}
    half = {}
    async with aio.insecure_channel(address) as channel:
        process = channel.unary_unary("/demo.v1.DemoService/Process")  # bytes in, bytes out

        async def worker():
            while counts["started"] < calls:
                counts["started"] += 1
                try:
                    await process(request, timeout=60)
                    counts["ok"] += 1
                except grpc.RpcError:
                    pass
                counts["done"] += 1
                if not half and counts["done"] * 2 >= calls:
                    half.update(ms=(time.perf_counter() - started) * 1000, done=counts["done"])

        started = time.perf_counter()
        cpu_started = time.process_time()
        await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(min(concurrency, calls)))), timeout=600)
        ms = (time.perf_counter() - started) * 1000
        cpu_us = (time.process_time() - cpu_started) * 1e6
    result = {"calls": calls, "ok": counts["ok"], "ms": round(ms), "rate": round(calls * 1000 / ms), "cpuUsPerCall": round(cpu_us / calls)}
    if half and half["ms"] < ms:
        result["secondHalfRate"] = round((calls - half["done"]) * 1000 / (ms - half["ms"]))
    print(json.dumps(result))


if __name__ == "__main__":
    address, latency, total, inflight = sys.argv[1:5]
    asyncio.run(main(address, int(latency), int(total), int(inflight)))
