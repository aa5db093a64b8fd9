"""Email: the transactional outbox, message templates, delivery and the background sender."""
