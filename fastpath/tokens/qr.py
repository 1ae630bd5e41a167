"""QR images: render codes with segno, read them back with zxing-cpp."""

from __future__ import annotations

import io

import segno
import zxingcpp
from PIL import Image, UnidentifiedImageError

from fastpath.errors import QRImageError


def qr_png(text: str, *, scale: int = 4, error: str = "M") -> bytes:
    """PNG bytes of a QR code holding ``text`` (base45 fits QR's alphanumeric mode)."""
    buf = io.BytesIO()
    segno.make_qr(text, error=error).save(buf, kind="png", scale=scale, border=4)
    return buf.getvalue()


def read_qr_texts(image: bytes) -> list[str]:
    """Texts of every QR code zxing-cpp finds in an image file (PNG, JPEG...).

    Raises :class:`QRImageError` when the bytes are not a readable image.
    """
    try:
        picture = Image.open(io.BytesIO(image))
        picture.load()
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise QRImageError(f"not an image: {exc}") from exc
    found = zxingcpp.read_barcodes(picture)
    return [b.text for b in found if b.format == zxingcpp.BarcodeFormat.QRCode]
