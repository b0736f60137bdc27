"""Smoke test of a deployed suite, as a client sees it: the official openai SDK streaming a chat
completion through BASE_URL (the Ingress, or compose's nginx). `make smoke` runs it after each
deploy; CI rolls the release back when it fails.

    SMOKE_API_KEY=sk-... python tests/smoke/smoke.py --base-url https://api.example/v1 [--model mock] [--ca ca.crt]

Exit status 0 and one summary line when the answer streamed whole; 1 and the reason otherwise.
"""

from __future__ import annotations

import argparse
import os
import ssl
import sys
import time

import openai


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True, help="the API's /v1 URL")
    parser.add_argument("--model", default="mock")
    parser.add_argument("--ca", help="a CA certificate to trust (compose's deploy/tls/ca.crt)")
    parser.add_argument("--timeout-s", type=float, default=60.0)
    return parser.parse_args(argv)


def smoke(args: argparse.Namespace, api_key: str) -> str:
    http_client = None
    if args.ca:
        http_client = openai.DefaultHttpxClient(verify=ssl.create_default_context(cafile=args.ca))
    client = openai.OpenAI(
        base_url=args.base_url,
        api_key=api_key,
        timeout=args.timeout_s,
        max_retries=0,
        http_client=http_client,
    )
    models = {m.id for m in client.models.list()}
    if args.model not in models:
        raise AssertionError(f"model {args.model!r} is not served (served: {', '.join(sorted(models))})")
    started = time.perf_counter()
    first_token_s = None
    text, finish, usage, chunks = [], None, None, 0
    stream = client.chat.completions.create(
        model=args.model,
        messages=[{"role": "user", "content": "Smoke test: answer with a short sentence."}],
        stream=True,
        stream_options={"include_usage": True},
        max_tokens=32,
    )
    for chunk in stream:
        chunks += 1
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            if choice.delta.content:
                first_token_s = first_token_s or time.perf_counter() - started
                text.append(choice.delta.content)
            finish = choice.finish_reason or finish
    total_s = time.perf_counter() - started
    if not text:
        raise AssertionError("the stream carried no content")
    if finish not in {"stop", "length"}:
        raise AssertionError(f"the stream ended without a finish reason (got {finish!r})")
    if usage is None or usage.total_tokens <= 0:
        raise AssertionError("no usage chunk at the end of the stream")
    assert first_token_s is not None
    return (
        f"smoke: OK {args.model} via {args.base_url}: {chunks} chunks, {usage.total_tokens} tokens, "
        f"first token {first_token_s * 1000:.0f} ms, whole answer {total_s * 1000:.0f} ms"
    )


def main(argv: list[str]) -> int:
    args = parse(argv)
    api_key = os.environ.get("SMOKE_API_KEY", "")
    if not api_key:
        print("smoke: set SMOKE_API_KEY to an API key of the deployment", file=sys.stderr)
        return 2
    try:
        print(smoke(args, api_key))
    except (openai.OpenAIError, AssertionError) as exc:
        print(f"smoke: FAILED against {args.base_url}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
