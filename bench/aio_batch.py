"""A realistic Python grpc.aio batch script, the one grpc-batch replaces (bench only, issue 18).

Reads JSONL requests, json_format.ParseDict each into demo.v1.ProcessRequest, calls Process with a
timeout keeping CONCURRENCY calls in flight over one channel, and writes one results line per record
(json_format.MessageToJson of the reply, or the error) to OUTPUT. Prints one JSON line of figures.

Needs Debian's python3-grpcio and python3-protobuf, and demo_pb2 from protoc:
  protoc -Iproto --python_out=bench/.data/py proto/demo/v1/demo.proto
Usage: /usr/bin/python3 bench/aio_batch.py TARGET INPUT OUTPUT [CONCURRENCY=100] [TIMEOUT_S=30]
"""
import asyncio
import json
import os
import resource
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '.data', 'py'))
import grpc  # noqa: E402
from google.protobuf import json_format  # noqa: E402
from demo.v1 import demo_pb2  # noqa: E402


async def main(target, input_path, output_path, concurrency, timeout):
    ok = 0
    failed = 0
    started = time.monotonic()
    async with grpc.aio.insecure_channel(target) as channel:
        process = channel.unary_unary('/demo.v1.DemoService/Process',
                                      request_serializer=demo_pb2.ProcessRequest.SerializeToString,
                                      response_deserializer=demo_pb2.ProcessResponse.FromString)
        with open(input_path, encoding='utf-8') as source, open(output_path, 'w', encoding='utf-8') as out:
            lines = enumerate(source, 1)

            async def worker():
                nonlocal ok, failed
                for number, line in lines:
                    try:
                        request = json_format.ParseDict(json.loads(line), demo_pb2.ProcessRequest())
                    except (ValueError, json_format.ParseError) as error:
                        failed += 1
                        out.write(json.dumps({'line': number, 'error': str(error)}) + '\n')
                        continue
                    try:
                        reply = await process(request, timeout=timeout)
                    except grpc.aio.AioRpcError as error:
                        failed += 1
                        out.write(json.dumps({'line': number, 'code': error.code().name, 'message': error.details()}) + '\n')
                        continue
                    ok += 1
                    out.write('{"line":%d,"response":%s}\n' % (number, json_format.MessageToJson(reply, indent=None)))

            await asyncio.gather(*(worker() for _ in range(concurrency)))
    ms = (time.monotonic() - started) * 1000
    usage = resource.getrusage(resource.RUSAGE_SELF)
    calls = ok + failed
    print(json.dumps({'calls': calls, 'ok': ok, 'ms': round(ms), 'rate': round(calls / ms * 1000),
                      'cpuUsPerCall': round((usage.ru_utime + usage.ru_stime) / max(calls, 1) * 1e6, 1),
                      'maxRssMb': round(usage.ru_maxrss / 1024)}))


if __name__ == '__main__':
    args = sys.argv[1:]
    if len(args) < 3:
        sys.exit(__doc__)
    asyncio.run(main(args[0], args[1], args[2], int(args[3]) if len(args) > 3 else 100, float(args[4]) if len(args) > 4 else 30.0))
