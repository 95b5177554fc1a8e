#!/usr/bin/env python3
"""Stream a generation from an atoma node over gRPC (atoma.v1.Inference) and print usage.

    python3 examples/python/generate.py --addr 127.0.0.1:50051 --model demo "Once upon a time"

Needs grpcio and protobuf (Debian: python3-grpcio python3-protobuf) plus protoc and
grpc_python_plugin (Debian: protobuf-compiler protobuf-compiler-grpc) to generate the stubs from
proto/ on first use; see README.md. The stubs are never checked in.
"""

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO_ROOT = os.path.normpath(os.path.join(HERE, "..", "..", "proto"))
PROTOS = ["atoma/v1/inference.proto", "atoma/v1/admin.proto"]


def generate_stubs(out_dir):
    """Runs protoc with the gRPC Python plugin over proto/ into out_dir (idempotent)."""
    plugin = subprocess.run(["which", "grpc_python_plugin"], capture_output=True, text=True)
    if plugin.returncode != 0:
        sys.exit("generate.py: grpc_python_plugin not found (Debian: protobuf-compiler-grpc)")
    os.makedirs(out_dir, exist_ok=True)
    # Write into a private folder and rename, so concurrent first runs do not see half a package.
    tmp = tempfile.mkdtemp(dir=out_dir)
    cmd = ["protoc", "-I", PROTO_ROOT, "--python_out", tmp, "--grpc_out", tmp,
           "--plugin=protoc-gen-grpc=" + plugin.stdout.strip()] + PROTOS
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit("generate.py: protoc failed: " + result.stderr.strip())
    final = os.path.join(out_dir, "stubs")
    try:
        os.rename(tmp, final)
    except OSError:
        pass  # another run won the race; its stubs are the same
    return final


def import_stubs(stubs_dir):
    if stubs_dir is None:
        digest = hashlib.sha256()
        for proto in PROTOS:
            with open(os.path.join(PROTO_ROOT, proto), "rb") as f:
                digest.update(f.read())
        base = os.path.join(tempfile.gettempdir(), "atoma-py-stubs-" + digest.hexdigest()[:16])
        stubs_dir = os.path.join(base, "stubs")
        if not os.path.isdir(stubs_dir):
            stubs_dir = generate_stubs(base)
    sys.path.insert(0, stubs_dir)
    from atoma.v1 import inference_pb2, inference_pb2_grpc  # noqa: E402
    return inference_pb2, inference_pb2_grpc


FINISH = {0: "unspecified", 1: "stop", 2: "length", 3: "cancelled"}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("prompt", nargs="?", help="prompt text")
    p.add_argument("--addr", default="127.0.0.1:50051", help="node gRPC address host:port")
    p.add_argument("--model", help="model id (see --list-models)")
    p.add_argument("--chat", action="store_true", help="send the prompt as a user chat message")
    p.add_argument("--system", help="system message (implies --chat)")
    p.add_argument("--max-tokens", type=int, help="most tokens to generate (default: node's)")
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")
    p.add_argument("--top-p", type=float, help="nucleus sampling, in (0, 1]")
    p.add_argument("--top-k", type=int, default=0, help="0 = off")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--stop", action="append", default=[], help="stop string (repeatable)")
    p.add_argument("--timeout", type=float, default=600.0, help="call deadline in seconds")
    p.add_argument("--list-models", action="store_true", help="list the served models and exit")
    p.add_argument("--stubs-dir", help="folder with pre-generated stubs (default: generate into "
                   "the temp folder on first use)")
    args = p.parse_args()
    # The completion is UTF-8 whatever the locale says.
    sys.stdout.reconfigure(encoding="utf-8")

    import grpc
    pb, pb_grpc = import_stubs(args.stubs_dir)
    channel = grpc.insecure_channel(args.addr)
    stub = pb_grpc.InferenceStub(channel)

    try:
        if args.list_models:
            for m in stub.ListModels(pb.ListModelsRequest(), timeout=args.timeout).models:
                print(f"{m.id}\tcontext {m.context_length}\tchat {m.chat_format or '-'}\t"
                      f"digest {m.digest_hex}")
            return 0
        if not args.model or args.prompt is None:
            p.error("--model and a prompt are required")

        request = pb.GenerateRequest(model=args.model)
        if args.chat or args.system:
            messages = []
            if args.system:
                messages.append(pb.ChatMessage(role="system", content=args.system))
            messages.append(pb.ChatMessage(role="user", content=args.prompt))
            request.chat.messages.extend(messages)
        else:
            request.text = args.prompt
        if args.max_tokens is not None:
            request.max_tokens = args.max_tokens
        request.sampling.temperature = args.temperature
        request.sampling.top_k = args.top_k
        request.sampling.seed = args.seed
        if args.top_p is not None:
            request.sampling.top_p = args.top_p
        request.stop.extend(args.stop)

        start = time.monotonic()
        result = None
        text_ended_in_newline = True
        for message in stub.Generate(request, timeout=args.timeout):
            kind = message.WhichOneof("event")
            if kind == "chunk":
                if message.chunk.text:
                    sys.stdout.write(message.chunk.text)
                    sys.stdout.flush()
                    text_ended_in_newline = message.chunk.text.endswith("\n")
            elif kind == "final":
                result = message.final
        if not text_ended_in_newline:
            sys.stdout.write("\n")
        sys.stdout.flush()
        if result is None:
            print("generate.py: the stream ended without a final message", file=sys.stderr)
            return 1
        u = result.usage
        print(f"[{FINISH.get(result.finish_reason, '?')}] prompt tokens: {u.prompt_tokens}, "
              f"completion tokens: {u.completion_tokens}, "
              f"time to first token: {u.time_to_first_token_ms:.1f} ms, "
              f"{u.tokens_per_second:.1f} tokens/s, total {u.total_time_ms:.1f} ms "
              f"(client wall {1000 * (time.monotonic() - start):.1f} ms)", file=sys.stderr)
        return 0
    except grpc.RpcError as e:
        sys.stdout.flush()
        print(f"generate.py: {e.code().name}: {e.details()}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
