"""`python -m user_service`: run one process of the user service."""

from libs.infra import serve
from user_service import api
from user_service.settings import Settings


def main() -> None:
    serve.run(Settings, api.create_app)


if __name__ == "__main__":
    main()
