#!/usr/bin/env python3
"""Renders chat conversations with a model's real chat template the way Hugging Face transformers
does (Jinja2 sandbox, trim_blocks, lstrip_blocks, loopcontrols, raise_exception, tojson, special
tokens from tokenizer_config.json), for the C++ chat-format tests.

  render_chat.py <tokenizer_config.json> <chats.json> [--template file.jinja]
  render_chat.py --check <expected.jsonl> <tokenizer_config.json> <chats.json> [--template f]

Prints one JSON line per conversation: {"i", "with_prompt", "without_prompt"}. --template
replaces the config's template (Llama-2's package has none; tests use Meta's Llama-2-chat
template). --check compares with a checked-in file instead (exit status 1 on a difference).
"""
import json
import sys

try:
    import jinja2
    import jinja2.ext
    import jinja2.sandbox
except ImportError:
    print("render_chat.py: Python jinja2 is not installed", file=sys.stderr)
    sys.exit(77)  # ctest's "skipped"


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                      sort_keys=sort_keys)


def token_text(v):
    if isinstance(v, dict):
        return v.get("content")
    return v


def render_all(config_path, chats_path, template_path):
    config = json.load(open(config_path, encoding="utf-8"))
    template = config.get("chat_template")
    if template_path:
        template = open(template_path, encoding="utf-8").read()
    if isinstance(template, list):
        template = next(t["template"] for t in template if t["name"] == "default")
    env = jinja2.sandbox.ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    compiled = env.from_string(template)
    specials = {}
    for key in ["bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token",
                "mask_token"]:
        v = token_text(config.get(key))
        if v:
            specials[key] = v
    lines = []
    for i, chat in enumerate(json.load(open(chats_path, encoding="utf-8"))):
        out = {"i": i}
        for key, gen in (("with_prompt", True), ("without_prompt", False)):
            out[key] = compiled.render(messages=chat, add_generation_prompt=gen, **specials)
        lines.append(json.dumps(out, ensure_ascii=False))
    return "\n".join(lines) + "\n"


def main(argv):
    template = None
    missing = [a for a in argv if a.endswith(".json") and not __import__("os").path.exists(a)]
    if missing:
        print(f"render_chat.py: {missing[0]} is missing (run npm ci)", file=sys.stderr)
        return 77
    if "--template" in argv:
        k = argv.index("--template")
        template = argv[k + 1]
        argv = argv[:k] + argv[k + 2:]
    if argv and argv[0] == "--check":
        expected_path, config_path, chats_path = argv[1:4]
        expected = open(expected_path, encoding="utf-8").read()
        actual = render_all(config_path, chats_path, template)
        if expected != actual:
            print(f"{expected_path}: differs from the live rendering", file=sys.stderr)
            return 1
        print(f"{expected_path}: matches the live rendering")
        return 0
    sys.stdout.write(render_all(argv[0], argv[1], template))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
