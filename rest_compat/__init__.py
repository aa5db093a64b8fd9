"""The REST compatibility layer: each documented endpoint replays a fixed GraphQL operation."""
