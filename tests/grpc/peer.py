"""gRPC peers for tests/grpc.rs, with Python grpcio (the C-core implementation).

    peer.py server NAME [MODE] [--tls CERT KEY]
                                 serve on 127.0.0.1:<free port> (TLS with --tls), print the
                                 port, stop when stdin closes. Methods (raw bytes, no
                                 protobuf needed):
                                   /test.Echo/Unary   -> b"NAME:" + request
                                                         (MODE `refuse`: UNAVAILABLE)
                                   /test.Echo/Stream  -> b"NAME:" + each request (bidi)
                                   /test.Echo/Fail    -> status UNAVAILABLE, "NAME is draining"
                                   /grpc.health.v1.Health/Check and /Watch: grpcio's own
                                     health service (grpcio-health-checking), "" and
                                     "test.Echo" SERVING (none with MODE `nohealth`)
                                 Commands on stdin, one a line, each answered with a line:
                                   set SERVICE STATUS   ("-" is the whole server "")
                                                        -> "ok"
                                   count SERVICE STATUS -> how many checks were answered
                                                           with STATUS so far
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
from grpc_health.v1 import health, health_pb2, health_pb2_grpc


class CountingHealth(health.HealthServicer):
    """grpcio's health service, counting its answers per (service, status name)."""

    def __init__(self):
        super().__init__()
        self.counts = {}
        self.lock = threading.Lock()

    def Check(self, request, context):
        reply = super().Check(request, context)
        name = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
        with self.lock:
            key = (request.service, name)
            self.counts[key] = self.counts.get(key, 0) + 1
        return reply


def serve(name, *args):
    args = list(args)
    tls = None
    if "--tls" in args:
        i = args.index("--tls")
        tls = (args[i + 1], args[i + 2])
        del args[i : i + 3]
    mode = args[0] if args else None
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
    checks = CountingHealth()
    if mode != "nohealth":
        health_pb2_grpc.add_HealthServicer_to_server(checks, server)
        for service in ("", "test.Echo"):
            checks.set(service, health_pb2.HealthCheckResponse.SERVING)
    if tls:
        cert, key = (open(f, "rb").read() for f in tls)
        port = server.add_secure_port("127.0.0.1:0", grpc.ssl_server_credentials([(key, cert)]))
    else:
        port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(port, flush=True)
    # Commands until the test closes our stdin (or dies).
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        service = "" if words[1] == "-" else words[1]
        if words[0] == "set":
            checks.set(service, health_pb2.HealthCheckResponse.ServingStatus.Value(words[2]))
            print("ok", flush=True)
        elif words[0] == "count":
            with checks.lock:
                print(checks.counts.get((service, words[2]), 0), flush=True)
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
