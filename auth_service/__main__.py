"""`python -m auth_service`: run one process of the auth service."""

from auth_service import api
from auth_service.settings import Settings
from libs.infra import serve


def main() -> None:
    serve.run(Settings, api.create_app)


if __name__ == "__main__":
    main()
