"""The data model: migrations match the models, tokens, passwords."""

from tortoise.migrations.autodetector import MigrationAutodetector

from perezvon.core.auth import hash_password, verify_password
from perezvon.core.models import AccessGrant, Connection, Project, User, new_site_token


async def test_the_migrations_describe_the_models_exactly(perezvon_app):
    """`makemigrations` would write nothing: every model change has its migration."""
    from tortoise import Tortoise

    apps = {label: dict(cfg) for label, cfg in perezvon_app.db_config["apps"].items()}
    detector = MigrationAutodetector(Tortoise.apps, apps)
    assert await detector.changes() == []


async def test_the_schema_is_applied(perezvon_app):
    from tortoise import connections

    client = connections.get("default")
    count = await client.execute_query_dict("SELECT COUNT(*) AS n FROM calls")
    assert count[0]["n"] >= 0


def test_site_tokens_are_long_and_random():
    tokens = {new_site_token() for _ in range(1000)}
    assert len(tokens) == 1000
    assert all(len(t) == 32 for t in tokens)  # 24 random bytes, url-safe


async def test_every_connection_gets_its_own_token(perezvon_app):
    project = await Project.create(name="Tokens")
    a = await Connection.create(project=project, domain="tokens-a.example")
    b = await Connection.create(project=project, domain="tokens-b.example")
    assert a.token != b.token and len(a.token) == 32


def test_passwords_are_argon2_hashed():
    stored = hash_password("correct horse battery")
    assert stored.startswith("$argon2id$") and "correct horse" not in stored
    assert verify_password(stored, "correct horse battery")
    assert not verify_password(stored, "wrong")
    assert not verify_password(None, "anything") and not verify_password("garbage", "x")


async def test_grants_link_users_to_projects_or_connections(perezvon_app):
    user = await User.create(phone="+79160000999", first_name="Вера")
    project = await Project.create(name="Granted")
    connection = await Connection.create(project=project, domain="granted.example")
    await AccessGrant.create(user=user, project=project, level="view")
    await AccessGrant.create(user=user, connection=connection, level="full")
    levels = sorted(await AccessGrant.filter(user=user).values_list("level", flat=True))
    assert levels == ["full", "view"]


def test_settings_never_show_secrets_in_traces_or_logs():
    from perezvon.core.settings import Settings

    settings = Settings.from_env(
        env={},
        database_url="postgres://app:topsecret@db.internal/perezvon",
        redis_url="redis://:hunter2@redis.internal:6379/0",
        secret_key="very-secret",
    )
    shown = repr(settings)
    assert "topsecret" not in shown and "hunter2" not in shown and "very-secret" not in shown
    assert "postgres://app:****@db.internal/perezvon" in shown
    assert settings.database_url.endswith("topsecret@db.internal/perezvon")  # the value itself is intact
