-- NOTE: the Rust MER's own 02 and 03 assert type::is::uuid on a TYPE string field,
-- which no value passes (a uuid becomes a string first); a catalog that holds rows
-- has uid fields of TYPE uuid, as here.
BEGIN TRANSACTION;

DEFINE TABLE ModelAccess SCHEMAFULL;
DEFINE FIELD uid ON TABLE ModelAccess TYPE uuid;
DEFINE INDEX order ON TABLE ModelAccess COLUMNS uid UNIQUE;
DEFINE FIELD requestUid ON TABLE ModelAccess TYPE uuid;
DEFINE FIELD model ON TABLE ModelAccess TYPE string ASSERT $value != NONE AND $value != NULL;
DEFINE FIELD startAccess ON TABLE ModelAccess TYPE datetime ASSERT $value != NONE AND $value != NULL;
DEFINE FIELD stopAccess ON TABLE ModelAccess TYPE datetime ASSERT $value != NONE AND $value != NULL;

COMMIT TRANSACTION;
