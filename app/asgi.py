"""The ASGI entry point for uvicorn (and any other ASGI server)."""

from app.config import load_settings
from app.server import create_app

app = create_app(load_settings())
