-- Statements written for SurrealDB 1.x that 2.x still refuses after the rewrite
BEGIN TRANSACTION;

DEFINE FIELD host ON TABLE ConnTypeParams TYPE option<string>
    ASSERT $value = NONE OR !string::startsWith($value, "-");

-- a uid that is no uuid: the 02 schema refuses the row
CREATE ModelAccess CONTENT {
    uid: "not-a-uuid",
    requestUid: <uuid> "9e1d2f3e-0000-4a00-8000-000000000009",
    model: "bert",
    startAccess: d"2024-03-04T08:00:00Z",
    stopAccess: d"2024-03-04T08:00:01Z",
};

-- runs after the failures: each statement stands on its own
CREATE ModelAccess CONTENT {
    uid: <uuid> "5c1d2f3e-0000-4a00-8000-000000000004",
    requestUid: <uuid> "9e1d2f3e-0000-4a00-8000-000000000004",
    model: "bert",
    startAccess: d"2024-03-04T09:00:00Z",
    stopAccess: d"2024-03-04T09:00:01Z",
};

COMMIT TRANSACTION;
