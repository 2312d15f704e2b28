"""SQS FIFO consumer Lambda."""
