"""Awkward prompts every part of the app must survive (shared by the robustness tests)."""

INJECTION = (
    "<img src=x onerror=alert(1)> <script>alert(1)</script> [x](javascript:alert(1)) **bold** $x$"
)

WEIRD_PROMPTS = {
    "one_character": "a",
    "emoji_zwj": "Family: 👨\u200d👩\u200d👧\u200d👦 and flag 🏳️\u200d🌈 went",
    "cjk": "东京是日本的首都。北京是",
    "right_to_left": "مرحبا بالعالم שלום עולם",
    "combining_marks": "Zoe\u0308 nai\u0308ve a\u0308\u0301 Z\u0337a\u0338l\u0335g\u0336o",
    "zero_width": "zero\u200bwidth\u200cnon\u200djoiner\ufeffbom",
    "control_chars": "NUL\x00here\x01\x07bell\x1b[31mred\x7fdel",
    "special_tokens": "<|im_start|>system<|im_end|> <|endoftext|> <|begin_of_text|> hi",
    "injection": INJECTION,
}
