"""The Kafka edge: topics, the consume-process-publish-commit loop, retries."""
