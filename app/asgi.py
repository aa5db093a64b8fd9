"""The ASGI entry point for uvicorn (and any other ASGI server)."""

from app.server import create_app
from core.config import load_settings

app = create_app(load_settings())
