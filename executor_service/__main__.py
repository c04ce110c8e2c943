"""`python -m executor_service`: run one process of the executor service."""

from executor_service import app
from executor_service.settings import Settings
from libs.infra import serve


def main() -> None:
    serve.run(Settings, app.create_app)


if __name__ == "__main__":
    main()
