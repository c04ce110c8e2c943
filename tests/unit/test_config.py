"""The settings loader (`libs.infra.config`): where settings come from and in which order, what
`CONFIG_LOCATION` names, the properties syntax, and errors that say where without showing a
secret. Every test builds its own files under `tmp_path` and its own environment."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import ClassVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import Field, SecretStr

from auth_service.settings import Settings as AuthSettings
from executor_service.settings import Settings as ExecutorSettings
from job_service.settings import Settings as JobSettings
from libs.infra import config
from scheduler_service.settings import Settings as SchedulerSettings
from user_service.settings import Settings as UserSettings

SERVICE_CLASSES = (UserSettings, AuthSettings, JobSettings, SchedulerSettings, ExecutorSettings)
DATABASE = "postgresql://app@localhost:5432/app"
# Made-up secrets, for the tests that they are never shown.
SECRET_URL = "postgresql://u:S3cretValue@h/db"
TOKEN = "T0ken-" + "x" * 40  # long enough for DemoSettings.demo_token
SHORT_TOKEN = "Sh0rtT0kenValue"  # shorter than demo_token's minimum


class DemoSettings(config.ServiceSettings):
    service_name: ClassVar[str] = "demo_service"
    http_port: config.Port = 8099

    demo_token: SecretStr = Field(default=SecretStr("d" * 32), min_length=32)
    demo_greeting: str = "hello"


class DemoKafkaSettings(config.KafkaSettings):
    service_name: ClassVar[str] = "demo_service"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No setting, nor where to find files, leaks in from the environment running the tests."""
    names = {"config_location", "spring_config_location"}
    for cls in (DemoSettings, DemoKafkaSettings, *SERVICE_CLASSES):
        names.update(cls.model_fields)
    for name in list(os.environ):
        if name.lower() in names:  # env var names match settings case-insensitively
            monkeypatch.delenv(name)


@pytest.fixture
def env_database(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", DATABASE)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def locate(monkeypatch: pytest.MonkeyPatch, *entries: object) -> None:
    monkeypatch.setenv("CONFIG_LOCATION", ",".join(str(entry) for entry in entries))


def config_error(settings_cls: type[config.ServiceSettings] = DemoSettings) -> str:
    with pytest.raises(config.ConfigError) as caught:
        config.load(settings_cls)
    return str(caught.value)


def parse(text: str) -> dict[str, str]:
    return {k: e.value for k, e in config.parse_properties(text, Path("t.properties")).items()}


# --- Precedence -------------------------------------------------------------------------------

LAYERS = (
    "default",
    "service.properties",
    "secrets.properties",
    "demo_service.properties",
    "explicit file",
    "environment",
)


@pytest.mark.parametrize("top", range(len(LAYERS)), ids=LAYERS)
def test_each_source_overrides_every_source_below(
    top: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env_database: None
) -> None:
    # Every layer up to `top` sets demo.greeting to its own name; the highest one must win.
    folder = tmp_path / "conf"
    folder.mkdir()
    explicit = tmp_path / "extra.properties"
    for layer in LAYERS[1 : top + 1]:
        if layer == "explicit file":
            write(explicit, f"demo.greeting={layer}\n")
        elif layer == "environment":
            monkeypatch.setenv("DEMO_GREETING", layer)
        else:
            write(folder / layer, f"demo.greeting={layer}\n")
    locate(monkeypatch, folder, f"optional:{explicit}")

    expected = "hello" if top == 0 else LAYERS[top]
    assert config.load(DemoSettings).demo_greeting == expected


def test_load_arguments_override_the_environment_and_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env_database: None
) -> None:
    write(tmp_path / "demo_service.properties", "demo.greeting=file\nhttp.port=1111\n")
    locate(monkeypatch, tmp_path)
    monkeypatch.setenv("DEMO_GREETING", "environment")

    loaded = config.load(DemoSettings, demo_greeting="argument")

    assert loaded.demo_greeting == "argument"
    assert loaded.http_port == 1111  # what the arguments leave alone still comes from below


def test_defaults_apply_when_nothing_sets_a_setting(env_database: None) -> None:
    loaded = config.load(DemoSettings)

    assert loaded.database_url.get_secret_value() == DATABASE
    assert loaded.http_port == 8099
    assert (loaded.log_level, loaded.environment, loaded.resolved_log_format) == (
        "INFO",
        "production",
        "json",
    )


# --- CONFIG_LOCATION: folders, lists, optional:, file: ----------------------------------------


def test_folder_contributes_only_the_files_present(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env_database: None
) -> None:
    # No service.properties, no secrets.properties: not an error, the own file alone is read.
    write(tmp_path / "demo_service.properties", "demo.greeting=own\n")
    locate(monkeypatch, tmp_path)

    assert config.load(DemoSettings).demo_greeting == "own"


def test_folder_reads_shared_files_before_the_services_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env_database: None
) -> None:
    write(tmp_path / "service.properties", "demo.greeting=shared\nlog.level=ERROR\nhttp.port=1\n")
    write(tmp_path / "secrets.properties", "log.level=WARNING\nhttp.port=2\n")
    write(tmp_path / "demo_service.properties", "http.port=3\n")
    locate(monkeypatch, tmp_path)

    loaded = config.load(DemoSettings)

    assert (loaded.demo_greeting, loaded.log_level, loaded.http_port) == ("shared", "WARNING", 3)


def test_folder_does_not_read_another_services_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env_database: None
) -> None:
    # Malformed and full of unknown keys: reading it at all would raise.
    write(tmp_path / "other_service.properties", "http.port=1234\nnot a pair\nbogus.key=1\n")
    locate(monkeypatch, tmp_path)

    assert config.load(DemoSettings).http_port == 8099


def test_location_is_a_comma_separated_list_with_spaces(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env_database: None
) -> None:
    first = write(tmp_path / "a.properties", "demo.greeting=first\nlog.level=DEBUG\n")
    second = write(tmp_path / "b.properties", "demo.greeting=second\n")
    monkeypatch.setenv("CONFIG_LOCATION", f"  {first} , ,  {second}  ")

    loaded = config.load(DemoSettings)

    assert (loaded.demo_greeting, loaded.log_level) == ("second", "DEBUG")


def test_optional_file_may_be_absent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env_database: None
) -> None:
    present = write(tmp_path / "a.properties", "demo.greeting=present\n")
    locate(monkeypatch, present, f"optional:{tmp_path / 'absent.properties'}")

    assert config.load(DemoSettings).demo_greeting == "present"


def test_absent_file_without_optional_is_an_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env_database: None
) -> None:
    absent = tmp_path / "absent.properties"
    locate(monkeypatch, absent)

    message = config_error()

    assert str(absent) in message
    assert "not found" in message


def test_optional_folder_may_be_absent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env_database: None
) -> None:
    write(tmp_path / "conf" / "demo_service.properties", "demo.greeting=present\n")
    locate(monkeypatch, f"optional:{tmp_path / 'no-such-folder'}", tmp_path / "conf")

    assert config.load(DemoSettings).demo_greeting == "present"


def test_absent_folder_without_optional_is_an_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env_database: None
) -> None:
    absent = tmp_path / "no-such-folder"
    locate(monkeypatch, absent)

    assert str(absent) in config_error()


@pytest.mark.parametrize("prefix", ["file:", "optional:file:"])
def test_file_prefix_is_accepted(
    prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env_database: None
) -> None:
    path = write(tmp_path / "a.properties", "demo.greeting=spring-style\n")
    locate(monkeypatch, f"{prefix}{path}")

    assert config.load(DemoSettings).demo_greeting == "spring-style"


@pytest.mark.parametrize("config_location", [None, "", "   "], ids=["unset", "empty", "blank"])
def test_spring_config_location_is_used_without_config_location(
    config_location: str | None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    env_database: None,
) -> None:
    path = write(tmp_path / "spring.properties", "demo.greeting=spring\n")
    if config_location is not None:
        monkeypatch.setenv("CONFIG_LOCATION", config_location)
    monkeypatch.setenv("SPRING_CONFIG_LOCATION", str(path))

    assert config.load(DemoSettings).demo_greeting == "spring"


def test_config_location_wins_over_spring_config_location(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env_database: None
) -> None:
    ours = write(tmp_path / "ours.properties", "demo.greeting=ours\n")
    spring = write(tmp_path / "spring.properties", "demo.greeting=spring\nlog.level=DEBUG\n")
    monkeypatch.setenv("CONFIG_LOCATION", str(ours))
    monkeypatch.setenv("SPRING_CONFIG_LOCATION", str(spring))

    loaded = config.load(DemoSettings)

    assert (loaded.demo_greeting, loaded.log_level) == ("ours", "INFO")  # spring's not read


# --- Keys and environment variable names -----------------------------------------------------


@pytest.mark.parametrize("key", ["database.url", "database-url", "DATABASE_URL", "Database.Url"])
def test_every_spelling_of_a_key_sets_the_setting(
    key: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    locate(monkeypatch, write(tmp_path / "a.properties", f"{key}={DATABASE}\n"))

    assert config.load(DemoSettings).database_url.get_secret_value() == DATABASE


@pytest.mark.parametrize("layer", ["nothing", "environment", "shared file", "own file"])
def test_is_set_tells_a_setting_given_by_a_source_from_a_default(
    layer: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "conf"
    folder.mkdir()
    locate(monkeypatch, folder)
    if layer == "environment":
        monkeypatch.setenv("Demo_Greeting", "hi")
    elif layer != "nothing":
        name = "secrets.properties" if layer == "shared file" else "demo_service.properties"
        write(folder / name, "demo.greeting=hi\n")

    assert config.is_set(DemoSettings, "demo_greeting") is (layer != "nothing")
    assert not config.is_set(DemoSettings, "http_port")


@pytest.mark.parametrize("name", ["HTTP_PORT", "http_port", "Http_Port"])
def test_environment_variable_names_are_case_insensitive(
    name: str, monkeypatch: pytest.MonkeyPatch, env_database: None
) -> None:
    monkeypatch.setenv(name, "9000")

    assert config.load(DemoSettings).http_port == 9000


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("database.url", "database_url"),
        ("database-url", "database_url"),
        ("DATABASE_URL", "database_url"),
        ("  Kafka.Dead-Letter.topic ", "kafka_dead_letter_topic"),
    ],
)
def test_normalise_key(key: str, expected: str) -> None:
    assert config.normalise_key(key) == expected


# --- The properties syntax ---------------------------------------------------------------------


def test_equals_and_colon_separate_with_whitespace_around() -> None:
    text = "a=1\nb = 2\nc:3\nd : 4\n  \t e\t=\t5\nf=\ng :\n"

    assert parse(text) == {"a": "1", "b": "2", "c": "3", "d": "4", "e": "5", "f": "", "g": ""}


def test_comments_and_blank_lines_are_skipped() -> None:
    text = "# a=1\n! b=2\n   # c=3\n\t! d=4\n\n   \ne=5 # not a comment\nf=!x\n"

    assert parse(text) == {"e": "5 # not a comment", "f": "!x"}


def test_backslash_at_end_of_line_continues_it() -> None:
    text = "list=one, \\\n     two, \\\n\tthree\nnext=1\npath=C:\\\\\nafter=2\n"

    assert parse(text) == {"list": "one, two, three", "next": "1", "path": "C:\\", "after": "2"}


def test_continued_line_is_not_a_comment() -> None:
    assert parse("a=1 \\\n# 2\n") == {"a": "1 # 2"}


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("tab\\there", "tab\there"),
        ("two\\nlines", "two\nlines"),
        ("caf\\u00e9", "café"),
        ("\\u00E9\\u20ac", "é€"),
        ("\\ud83d\\ude00", "😀"),  # a surrogate pair is one character, as in Java
        ("back\\\\slash", "back\\slash"),
        ("\\ leading space", " leading space"),
        ("trailing\\ ", "trailing "),
        ("\\q", "q"),  # an unknown escape is the character itself
    ],
)
def test_escapes_in_values(raw: str, value: str) -> None:
    assert parse(f"k={raw}\n") == {"k": value}


@pytest.mark.parametrize(
    ("line", "key"),
    [("a\\=b=c", "a=b"), ("a\\:b:c", "a:b"), ("a\\\\=c", "a\\"), ("we\\u00efrd=c", "weïrd")],
)
def test_escaped_separator_and_escapes_in_key(line: str, key: str) -> None:
    assert parse(line) == {key: "c"}


def test_value_may_contain_separators() -> None:
    url = "postgresql://u:p@db.example:5432/app?sslmode=require&x=a:b"

    assert parse(f"database.url={url}\nratio : 1:2=3\n") == {"database_url": url, "ratio": "1:2=3"}


def test_trailing_whitespace_is_part_of_the_value() -> None:
    # As in Java: only the whitespace before the value is dropped.
    assert parse("a=value  \nb = x\t\n") == {"a": "value  ", "b": "x\t"}


def test_later_duplicate_key_wins_even_spelled_differently() -> None:
    entries = config.parse_properties("a=1\nb=2\na=3\nDATABASE_URL=x\ndatabase.url=y\n", Path("p"))

    assert {k: e.value for k, e in entries.items()} == {"a": "3", "b": "2", "database_url": "y"}
    assert (entries["a"].line, entries["database_url"].line) == (3, 5)


@pytest.mark.parametrize("char", ["\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028"])
def test_only_cr_and_lf_end_a_line(char: str) -> None:
    # str.splitlines would split at these, breaking the value and every later line number.
    assert parse(f"a=x{char}y\r\nb=1\rc=2\n") == {"a": f"x{char}y", "b": "1", "c": "2"}
    with pytest.raises(config.ConfigError, match=r"^p:3: "):
        config.parse_properties(f"a=x{char}y\r\nb=1\rbad\n", Path("p"))


def test_byte_order_mark_does_not_become_part_of_the_first_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "service.properties"
    path.write_bytes(b"\xef\xbb\xbfdatabase.url=" + DATABASE.encode() + b"\n")
    locate(monkeypatch, path)

    assert config.load(DemoSettings).database_url.get_secret_value() == DATABASE


def escaped(value: str) -> str:
    """`value` written so a properties parser must read it back unchanged."""
    value = value.replace("\\", "\\\\")
    body = value.lstrip(" \t\f")
    leading = value[: len(value) - len(body)]
    return leading.replace(" ", "\\ ").replace("\t", "\\t").replace("\f", "\\f") + body


KEYS = st.from_regex(r"[a-z][a-z0-9._-]{0,20}", fullmatch=True)
TEXT = st.text(
    alphabet=st.characters(
        blacklist_categories=("Cs",),
        blacklist_characters="\n\r\x00\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029",
    )
)
# Arbitrary text, with the characters a parser is most likely to mistreat made common at both
# ends, where they matter most (whitespace, a final backslash, separators, comment marks).
EDGE = st.text(alphabet=" \t\\=:#!u\u00a0\u3000", max_size=4)
VALUES = st.tuples(EDGE, TEXT, EDGE).map("".join)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])  # one file, rewritten
@given(key=KEYS, value=VALUES, separator=st.sampled_from(["=", ":", " = ", "\t: "]))
def test_written_value_reads_back_unchanged(
    key: str, value: str, separator: str, tmp_path: Path
) -> None:
    path = write(tmp_path / "p.properties", f"# generated\n{key}{separator}{escaped(value)}\n")

    entries = config.read_properties(config.properties_files(str(path), "demo_service"), set())

    assert {k: e.value for k, e in entries.items()} == {config.normalise_key(key): value}
    assert entries[config.normalise_key(key)].line == 2


# --- Malformed lines ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        ("a=1\nno separator here\n", 2, "expected 'key=value'"),
        ("# c\n\n= value\n", 3, "key is empty"),
        ("a=1\n  : value\n", 2, "key is empty"),
        ("a=\\u12zz\n", 1, "\\u escape"),
        ("a=\\ud83d only half\n", 1, "\\u escape"),
        ("a=1 \\\n  2 \\\n  3\nb=4\nbroken\n", 5, "expected 'key=value'"),
        ("a=1 \\\n  2\n\n# c \\\nbroken\n", 5, "expected 'key=value'"),  # comments don't continue
        ("a=1\n" * 11 + "x\n", 12, "expected 'key=value'"),
    ],
    ids=[
        "no-separator",
        "empty-key",
        "empty-key-colon",
        "bad-u-escape",
        "unpaired-surrogate",
        "after-continuations",
        "after-comment-ending-in-backslash",
        "two-digit-line",
    ],
)
def test_malformed_line_is_an_error_naming_file_and_line(
    text: str,
    line: int,
    problem: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    env_database: None,
) -> None:
    path = write(tmp_path / "service.properties", text)
    locate(monkeypatch, tmp_path)

    message = config_error()

    assert message.startswith(f"{path}:{line}: ")
    assert problem in message


# --- Unknown keys ------------------------------------------------------------------------------


def test_unknown_key_in_own_file_is_an_error_naming_line_and_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env_database: None
) -> None:
    path = write(tmp_path / "demo_service.properties", "http.port=1\n# c\nhttp.prot=2\n")
    locate(monkeypatch, tmp_path)

    message = config_error()

    assert message.startswith(f"{path}:3: ")
    assert "http_prot" in message


def test_unknown_key_in_explicitly_named_own_file_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env_database: None
) -> None:
    path = write(tmp_path / "elsewhere" / "demo_service.properties", "service.name=x\n")
    locate(monkeypatch, path)

    assert config_error().startswith(f"{path}:1: ")  # a class attribute is not a setting


@pytest.mark.parametrize("shared", ["service.properties", "secrets.properties", "extra.properties"])
def test_unknown_key_in_shared_file_is_ignored(
    shared: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env_database: None
) -> None:
    write(
        tmp_path / shared,
        "kafka.bootstrap.servers=k:9092\njwt.issuer=someone\ndemo.greeting=known\n",
    )
    locate(monkeypatch, tmp_path / shared if shared == "extra.properties" else tmp_path)

    assert config.load(DemoSettings).demo_greeting == "known"


# --- Missing and invalid settings --------------------------------------------------------------


def test_missing_required_setting_names_every_way_to_set_it() -> None:
    message = config_error()

    assert "database_url" in message
    assert "database.url" in message
    assert "DATABASE_URL" in message


def test_missing_kafka_bootstrap_servers_is_named(env_database: None) -> None:
    message = config_error(DemoKafkaSettings)

    assert "kafka_bootstrap_servers" in message
    assert "KAFKA_BOOTSTRAP_SERVERS" in message


def test_invalid_value_in_file_names_setting_and_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env_database: None
) -> None:
    path = write(tmp_path / "demo_service.properties", "log.level=INFO\n\nhttp.port=abc\n")
    locate(monkeypatch, tmp_path)

    message = config_error()

    assert "'http_port'" in message
    assert f"{path}:3" in message


def test_invalid_value_from_environment_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env_database: None
) -> None:
    # The file's valid value is overridden by the environment's invalid one: blame the latter.
    write(tmp_path / "demo_service.properties", "log.format=json\n")
    locate(monkeypatch, tmp_path)
    monkeypatch.setenv("LOG_FORMAT", "xml")

    message = config_error()

    assert "'log_format'" in message
    assert "environment variable LOG_FORMAT" in message
    assert "demo_service.properties" not in message


def test_invalid_argument_to_load_is_named_as_such(env_database: None) -> None:
    with pytest.raises(config.ConfigError, match=r"'http_port' \(argument to load\(\)\)"):
        config.load(DemoSettings, http_port=-1)


def test_every_invalid_setting_is_named_in_one_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env_database: None
) -> None:
    path = write(
        tmp_path / "demo_service.properties",
        "http.port=abc\nlog.format=xml\nkafka.dispatch.topic=bad topic!\n",
    )
    locate(monkeypatch, tmp_path)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "k:9092")

    message = config_error(DemoKafkaSettings)

    for field, line in [("http_port", 1), ("log_format", 2), ("kafka_dispatch_topic", 3)]:
        assert f"'{field}' ({path}:{line})" in message


# --- Secrets -----------------------------------------------------------------------------------


def test_secrets_from_files_are_never_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "secrets.properties", f"database.url={SECRET_URL}\ndemo.token={TOKEN}\n")
    locate(monkeypatch, tmp_path)

    loaded = config.load(DemoSettings)

    assert loaded.database_url.get_secret_value() == SECRET_URL  # loaded, only hidden
    assert loaded.demo_token.get_secret_value() == TOKEN
    for shown in (repr(loaded), str(loaded), str(loaded.describe()), loaded.model_dump_json()):
        assert "S3cretValue" not in shown
        assert TOKEN not in shown
    assert loaded.describe()["database_url"] == "**********"


def test_kafka_sasl_password_is_never_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env_database: None
) -> None:
    write(tmp_path / "secrets.properties", "kafka.sasl.password=KafkaS3cret\n")
    locate(monkeypatch, tmp_path)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "k:9092")

    loaded = config.load(DemoKafkaSettings)

    assert loaded.kafka_sasl_password is not None
    assert loaded.kafka_sasl_password.get_secret_value() == "KafkaS3cret"
    for shown in (repr(loaded), str(loaded), str(loaded.describe()), loaded.model_dump_json()):
        assert "KafkaS3cret" not in shown


def test_invalid_secret_is_named_without_its_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env_database: None
) -> None:
    path = write(tmp_path / "secrets.properties", f"demo.token={SHORT_TOKEN}\n")
    locate(monkeypatch, tmp_path)

    message = config_error()

    assert f"'demo_token' ({path}:1)" in message
    assert SHORT_TOKEN not in message


def test_invalid_secret_from_environment_is_named_without_its_value(
    monkeypatch: pytest.MonkeyPatch, env_database: None
) -> None:
    monkeypatch.setenv("DEMO_TOKEN", SHORT_TOKEN)

    message = config_error()

    assert "environment variable DEMO_TOKEN" in message
    assert SHORT_TOKEN not in message


@pytest.mark.parametrize(
    "later_line",
    ["http.port=abc", "log.format=xml", "http.prot=1", "not a pair", "x=\\u00zz"],
    ids=["invalid-int", "invalid-choice", "unknown-key", "malformed", "bad-escape"],
)
def test_error_about_a_file_holding_a_secret_does_not_show_it(
    later_line: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(
        tmp_path / "demo_service.properties",
        f"database.url={SECRET_URL}\ndemo.token={TOKEN}\n{later_line}\n",
    )
    locate(monkeypatch, tmp_path)

    message = config_error()

    assert "demo_service.properties:3" in message  # the error is the one about the later line
    assert "S3cretValue" not in message
    assert TOKEN not in message


# --- Unreadable files --------------------------------------------------------------------------


def test_file_that_is_not_utf8_is_an_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env_database: None
) -> None:
    path = tmp_path / "latin1.properties"
    path.write_bytes(b"demo.greeting=caf\xe9\n")
    locate(monkeypatch, path)

    message = config_error()

    assert str(path) in message
    assert "cannot read" in message


# --- The examples in config/ -------------------------------------------------------------------

COMMENTED_KEY = re.compile(r"^#([a-z][a-z0-9.\-]*)=", re.MULTILINE)


@pytest.mark.parametrize("settings_cls", SERVICE_CLASSES, ids=lambda c: c.service_name)
def test_example_config_loads_for_every_service_with_defaults(
    settings_cls: type[config.ServiceSettings],
    repo_root: Path,
    monkeypatch: pytest.MonkeyPatch,
    env_database: None,
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "k:9092")
    baseline = settings_cls(database_url=DATABASE, kafka_bootstrap_servers="k:9092")
    locate(monkeypatch, repo_root / "config")

    loaded = config.load(settings_cls)

    # The examples document the defaults: loading them changes nothing but the explicit port.
    ignored = {"node_id"}
    assert loaded.model_dump(exclude=ignored) == baseline.model_dump(exclude=ignored)


@pytest.mark.parametrize("settings_cls", SERVICE_CLASSES, ids=lambda c: c.service_name)
def test_example_config_documents_every_setting_and_only_real_ones(
    settings_cls: type[config.ServiceSettings], repo_root: Path
) -> None:
    folder = repo_root / "config"
    own = f"{settings_cls.service_name}.properties"
    names = ["service.properties", "secrets.properties.example", own]
    documented: set[str] = set()
    for name in names:
        text = (folder / name).read_text(encoding="utf-8")
        documented.update(config.parse_properties(text, folder / name))  # active lines
        documented.update(config.normalise_key(key) for key in COMMENTED_KEY.findall(text))

    fields = set(settings_cls.model_fields)
    known_anywhere = set().union(*(cls.model_fields for cls in SERVICE_CLASSES))
    assert fields <= documented
    # Keys in the shared files that other services use, and only those.
    assert documented - fields <= known_anywhere


def test_example_config_sets_no_database_url(repo_root: Path) -> None:
    for path in (repo_root / "config").glob("*.properties"):
        entries = config.parse_properties(path.read_text(encoding="utf-8"), path)
        assert "database_url" not in entries, path
        assert "kafka_sasl_password" not in entries, path
