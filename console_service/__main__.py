"""`python -m console_service`: run one process of the web console."""

from console_service import app
from console_service.settings import Settings
from libs.infra import serve


def main() -> None:
    serve.run(Settings, app.create_app)


if __name__ == "__main__":
    main()
