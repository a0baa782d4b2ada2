"""gRPC peers for tests/grpc.rs, with Python grpcio (the C-core implementation).

    peer.py server NAME [refuse] serve on 127.0.0.1:<free port>, print the port, stop when
                                 stdin closes. Methods (raw bytes, no protobuf needed):
                                   /test.Echo/Unary   -> b"NAME:" + request
                                                         (with `refuse`: UNAVAILABLE)
                                   /test.Echo/Stream  -> b"NAME:" + each request (bidi)
                                   /test.Echo/Fail    -> status UNAVAILABLE, "NAME is draining"
    peer.py unary TARGET N       N unary calls; prints a JSON list of replies or status names.
    peer.py client TARGET [CA SERVER_NAME]
                                 run the calls through TARGET (TLS when CA is given) and print
                                 one JSON object with what came back.
"""
import json
import sys
import threading
from concurrent import futures

import grpc


def serve(name, mode=None):
    prefix = name.encode() + b":"

    def unary(request, context):
        if mode == "refuse":
            context.abort(grpc.StatusCode.UNAVAILABLE, f"{name} refuses")
        context.set_trailing_metadata((("x-served-by", name),))
        return prefix + request

    def stream(requests, context):
        for r in requests:
            yield prefix + r

    def fail(request, context):
        context.abort(grpc.StatusCode.UNAVAILABLE, f"{name} is draining")

    handler = grpc.method_handlers_generic_handler(
        "test.Echo",
        {
            "Unary": grpc.unary_unary_rpc_method_handler(unary),
            "Stream": grpc.stream_stream_rpc_method_handler(stream),
            "Fail": grpc.unary_unary_rpc_method_handler(fail),
        },
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(port, flush=True)
    sys.stdin.read()  # until the test closes our stdin (or dies)
    server.stop(0)


def client(target, ca=None, server_name=None):
    if ca:
        creds = grpc.ssl_channel_credentials(root_certificates=open(ca, "rb").read())
        channel = grpc.secure_channel(
            target, creds, options=(("grpc.ssl_target_name_override", server_name),)
        )
    else:
        channel = grpc.insecure_channel(target)
    grpc.channel_ready_future(channel).result(timeout=20)
    unary = channel.unary_unary("/test.Echo/Unary")
    stream = channel.stream_stream("/test.Echo/Stream")
    fail = channel.unary_unary("/test.Echo/Fail")
    out = {"unary": [], "trailers": [], "stream": [], "fail": None}
    for i in range(20):
        reply, call = unary.with_call(f"hello {i}".encode(), timeout=20)
        out["unary"].append(reply.decode())
        out["trailers"].append(dict(call.trailing_metadata()).get("x-served-by"))
    replies = stream(iter([f"m{i}".encode() for i in range(100)]), timeout=30)
    out["stream"] = [r.decode() for r in replies]
    try:
        fail(b"x", timeout=20)
    except grpc.RpcError as e:
        out["fail"] = [e.code().name, e.details()]
    print(json.dumps(out), flush=True)


def unary_calls(target, n):
    channel = grpc.insecure_channel(target)
    grpc.channel_ready_future(channel).result(timeout=20)
    unary = channel.unary_unary("/test.Echo/Unary")
    out = []
    for i in range(int(n)):
        try:
            out.append(unary(f"u{i}".encode(), timeout=20).decode())
        except grpc.RpcError as e:
            out.append(e.code().name)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "server":
        serve(*sys.argv[2:])
    elif sys.argv[1] == "unary":
        unary_calls(*sys.argv[2:])
    else:
        client(*sys.argv[2:])
