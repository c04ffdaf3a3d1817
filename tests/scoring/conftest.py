import pytest
from django.db import connection


@pytest.fixture
def failing_property():
    """A real fault in PostgreSQL: writing a score of the property given to `fail` raises an error."""
    created = []

    def fail(property_id: int) -> None:
        with connection.cursor() as cursor:
            cursor.execute(
                f"""
                CREATE FUNCTION test_score_fault() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    IF NEW.property_id = {int(property_id)} THEN RAISE EXCEPTION 'storage fault for the test'; END IF;
                    RETURN NEW;
                END $$;
                CREATE TRIGGER test_score_fault BEFORE INSERT OR UPDATE ON scoring_score
                FOR EACH ROW EXECUTE FUNCTION test_score_fault();
                """
            )
        created.append(property_id)

    yield fail
    if created:
        with connection.cursor() as cursor:
            cursor.execute("DROP TRIGGER IF EXISTS test_score_fault ON scoring_score")
            cursor.execute("DROP FUNCTION IF EXISTS test_score_fault()")
