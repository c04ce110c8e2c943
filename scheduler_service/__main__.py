"""`python -m scheduler_service`: run one process of the scheduler service."""

from libs.infra import serve
from scheduler_service import app
from scheduler_service.settings import Settings


def main() -> None:
    serve.run(Settings, app.create_app)


if __name__ == "__main__":
    main()
