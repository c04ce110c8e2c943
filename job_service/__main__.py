"""`python -m job_service`: run one process of the job service."""

from job_service import api
from job_service.settings import Settings
from libs.infra import serve


def main() -> None:
    serve.run(Settings, api.create_app)


if __name__ == "__main__":
    main()
