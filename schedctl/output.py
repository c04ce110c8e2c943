"""What the client commands print: tables for people, the API's JSON for scripts, and every
error as one line on stderr (`schedctl: <what went wrong>`), never a traceback.

Errors of the client library are turned into that line in one place, `ClientGroup.invoke`,
which the root app uses, so no command catches them itself unless it has more to say.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, NoReturn

import typer
from pydantic import BaseModel
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text
from typer.core import TyperGroup

from scheduler_client import errors, models

PIPED_WIDTH = 240  # columns of a table written to a pipe or file, where no terminal says
CELL_MAX = 40  # characters of a free-text cell shown in a table before it is cut
NOT_LOGGED_IN = "not logged in; run 'schedctl login'"
INDEX = re.compile(r"\.(\d+)(?=\.|$)")  # `.2` of `jobs.2.name`: an item of a list


class Format(StrEnum):
    TABLE = "table"
    JSON = "json"


OutputOption = Annotated[
    Format,
    typer.Option(
        "--output",
        "-o",
        help="table: for people; json: the API's documents (camelCase), for scripts.",
        case_sensitive=False,
    ),
]

# Statuses of jobs and executions, by how they went; the word itself is always shown.
STATUS_STYLES = {
    "SCHEDULED": "cyan",
    "RUNNING": "blue",
    "DISPATCHED": "blue",
    "PAUSED": "yellow",
    "COMPLETED": "green",
    "SUCCEEDED": "green",
    "FAILED": "red",
    "TIMED_OUT": "red",
    "LOST": "red",
    "CANCELLED": "dim",
}


class UsageProblem(Exception):
    """A command line the client cannot act on (a missing flag, a file it cannot read);
    shown as one line with exit status 1."""


# --- Values --------------------------------------------------------------------------------------


def document(value: Any) -> Any:
    """A library answer as the API's JSON: models by their camelCase names, lists as arrays."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True)
    if isinstance(value, list | tuple):
        return [document(item) for item in value]
    if isinstance(value, dict):
        return {key: document(item) for key, item in value.items()}
    return value


def when(moment: datetime | None) -> str:
    """A time for people: the local wall clock with its zone (TZ=UTC shows UTC)."""
    if moment is None:
        return "-"
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


def clip(text: str | None, limit: int = CELL_MAX) -> str:
    """`text` on one line, cut to `limit` characters with an ellipsis."""
    if text is None or text == "":
        return "-"
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def status(value: str) -> Text:
    return Text(str(value), style=STATUS_STYLES.get(str(value), ""))


# --- Printing ------------------------------------------------------------------------------------


def console(stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    wide = None if stream.isatty() else PIPED_WIDTH
    return Console(file=stream, width=wide, soft_wrap=False, highlight=False)


def table(headers: Sequence[str], rows: Iterable[Sequence[str | Text]]) -> Table:
    """Rows under headers, no borders, one line per row."""
    grid = Table(box=box.SIMPLE_HEAD, pad_edge=False, expand=False, show_edge=False)
    for header in headers:
        grid.add_column(header, no_wrap=True, overflow="ellipsis")
    for row in rows:
        grid.add_row(*row)
    return grid


def fields(pairs: Iterable[tuple[str, str | Text]]) -> Table:
    """One resource as `name  value` lines."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    for name, value in pairs:
        grid.add_row(name, value)
    return grid


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(document(value), indent=2, ensure_ascii=False) + "\n")


def show(renderable: Any) -> None:
    """Print for people; written to a pipe or file, without the padding that ends lines."""
    screen = console()
    if screen.is_terminal:
        screen.print(renderable)
        return
    with screen.capture() as captured:
        screen.print(renderable)
    sys.stdout.write("".join(line.rstrip() + "\n" for line in captured.get().splitlines()))


def emit(value: Any, fmt: Format, view: Callable[[Any], Any]) -> None:
    """`value` (a library answer) as JSON, or as `view` shows it to people."""
    if fmt is Format.JSON:
        print_json(value)
    elif isinstance(value, list) and not value:
        print("None found.")
    else:
        show(view(value))


def emit_page(page: Any, fmt: Format, view: Callable[[Any], Any], noun: str) -> None:
    """One page of a list: the page document as JSON, or its items as a table and, when
    there are more, a hint on stderr saying how to read them."""
    if fmt is Format.JSON:
        print_json(page)
        return
    if page.items:
        show(view(page.items))
    else:
        print(f"No {noun}.")
    if page.next_cursor is not None:
        note(f"more {noun}: --all lists every one, --cursor {page.next_cursor} the next page")


def note(message: str) -> None:
    """A remark for people on stderr (a hint, a warning), kept out of what scripts read."""
    console(stderr=True).print(Text(message))


def fail(message: str, code: int = 1) -> NoReturn:
    print(f"schedctl: {message}", file=sys.stderr)
    raise typer.Exit(code)


# --- Errors --------------------------------------------------------------------------------------


def field_name(field: str) -> str:
    """A 422's field as the user wrote it: the body's fields without `body.`
    (`schedule.expression`), items of a list by their index (`jobs[2].name`); query
    parameters and headers keep their place (`query.label`)."""
    return INDEX.sub(r"[\1]", field.removeprefix("body."))


def field_errors(found: Iterable[models.FieldError]) -> str:
    """The fields a 422 names, each with what is wrong with it."""
    return "; ".join(f"{field_name(e.field)}: {plain(e.message)}" for e in found)


def _base_url(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}"


def describe(exc: errors.ClientError) -> str:
    """One line saying what went wrong, for any error of the client library."""
    if isinstance(exc, errors.ConnectionFailed):
        return (
            f"cannot reach {_base_url(exc.url)} ({exc.reason}); is the platform running? "
            "Start it with 'make up', or log in with --url to name where it is"
        )
    if isinstance(exc, errors.InvalidRequest) and exc.errors:
        return field_errors(exc.errors)
    if isinstance(exc, errors.InvalidGrant | errors.Unauthorized):
        # Outside `login`: the refresh token or the access token was refused.
        return f"the session has ended ({exc.detail or exc.title}); run 'schedctl login'"
    if isinstance(exc, errors.ApiError):
        message = problem_text(exc.title, exc.detail)
        if isinstance(exc, errors.RateLimited) and exc.retry_after is not None:
            message += f"; try again in {exc.retry_after:.0f} s"
        return message
    return str(exc)


def problem_text(title: str, detail: str | None) -> str:
    """A problem document's title and detail as one clause of a line."""
    first = title.split(" ", 1)[0]
    lower = first.isalpha() and first[1:].islower()  # not a name: "If-Match", "URL"
    shown = title[:1].lower() + title[1:] if lower else title
    return f"{shown}: {detail}" if detail and detail != title else shown


def plain(message: str) -> str:
    """A validation message without pydantic's `Value error, ` prefix."""
    return message.replace("Value error, ", "")


def _usage(exc: typer.TyperException) -> str:
    """A usage error of Typer as one line, with where to read the command's help."""
    message = plain(" ".join(exc.format_message().split()))
    ctx = getattr(exc, "ctx", None)
    if ctx is None:
        return message
    return f"{message[:1].lower()}{message[1:]} (see '{ctx.command_path} --help')"


class ClientGroup(TyperGroup):
    """The root group: what a command raises of the client library, and Typer's usage errors,
    become one line on stderr; exit status 1 (usage errors keep Typer's 2)."""

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except errors.ClientError as exc:
            fail(describe(exc))
        except UsageProblem as exc:
            fail(str(exc))
        except typer.TyperException as exc:  # a usage error, a bad parameter, a file error
            if type(exc).__name__ == "NoArgsIsHelpError":
                raise  # Typer prints the help
            fail(_usage(exc), exc.exit_code)
