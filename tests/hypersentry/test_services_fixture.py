import pytest
from django.db import connection


@pytest.mark.django_db
def test_the_suite_runs_on_postgresql() -> None:
    assert connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        assert cursor.fetchone()[0].startswith("15")


def test_the_suite_has_a_real_redis(redis_url: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    client.set("hs:probe", "1")
    assert client.get("hs:probe") == b"1"
