# The snakepit-migrate worker image used by docker-compose.yml.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md worker.py ./
COPY workflows ./workflows
COPY activities ./activities
COPY client ./client
COPY deployment ./deployment
COPY snakepit_bridge ./snakepit_bridge
RUN pip install --no-cache-dir .
ENV TEMPORAL_ADDRESS=temporal:7233
CMD ["python", "worker.py"]
