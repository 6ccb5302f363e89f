"""Set-of-marks: a screenshot with each element's box outlined and labelled with the id agents use."""

from __future__ import annotations

import io

from turngym.sandboxes.browser.a11y import Element


def draw_marks(png: bytes, elements: list[Element], scale: float) -> bytes:
    """Set-of-marks: the screenshot with each element's box outlined and labelled with its id."""
    from PIL import Image, ImageDraw

    img = Image.open(io.BytesIO(png)).convert("RGB")
    draw = ImageDraw.Draw(img)
    for e in elements:
        if e.box is None or e.box[2] <= 0 or e.box[3] <= 0 or e.role in ("generic", "text", "paragraph"):
            continue
        x, y, w, h = (v * scale for v in e.box)
        draw.rectangle([x, y, x + w, y + h], outline=(255, 0, 64), width=max(1, int(scale)))
        label = e.id
        tw = 6 * len(label) + 4
        draw.rectangle([x, y, x + tw, y + 11], fill=(255, 0, 64))
        draw.text((x + 2, y), label, fill=(255, 255, 255))
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()

