-- A Rust MER catalog written for these tests, in the SurrealQL 1.x of its migrations.
BEGIN TRANSACTION;

-- Where a model runs: empty for local, host/port/user/pass for ssh
DEFINE TABLE ConnTypeParams SCHEMALESS;
DEFINE FIELD uid ON TABLE ConnTypeParams TYPE string ASSERT $value != NONE AND $value != NULL;
DEFINE INDEX order ON TABLE ConnTypeParams COLUMNS uid UNIQUE;
DEFINE FIELD createdAt ON TABLE ConnTypeParams TYPE datetime ASSERT $value != NONE AND $value != NULL;
DEFINE FIELD lastUpdated ON TABLE ConnTypeParams TYPE datetime ASSERT $value != NONE AND $value != NULL;

-- How a model runs: inferenceCommand, trainCommand, modelPath and free keys
DEFINE TABLE ModelParams SCHEMALESS;
DEFINE FIELD uid ON TABLE ModelParams TYPE string ASSERT $value != NONE AND $value != NULL;
DEFINE INDEX order ON TABLE ModelParams COLUMNS uid UNIQUE;
DEFINE FIELD createdAt ON TABLE ModelParams TYPE datetime ASSERT $value != NONE AND $value != NULL;
DEFINE FIELD lastUpdated ON TABLE ModelParams TYPE datetime ASSERT $value != NONE AND $value != NULL;

DEFINE TABLE AvailableModels SCHEMAFULL;
DEFINE FIELD uid ON TABLE AvailableModels TYPE string ASSERT $value != NONE AND $value != NULL;
DEFINE INDEX order ON TABLE AvailableModels COLUMNS uid UNIQUE;
DEFINE FIELD name ON TABLE AvailableModels TYPE string ASSERT $value != NONE AND $value != NULL;
DEFINE FIELD connType ON TABLE AvailableModels TYPE string ASSERT $value != NONE AND $value != NULL;
DEFINE FIELD createdAt ON TABLE AvailableModels TYPE datetime ASSERT $value != NONE AND $value != NULL;
DEFINE FIELD lastUpdated ON TABLE AvailableModels TYPE datetime ASSERT $value != NONE AND $value != NULL;
-- 1.x record types: SurrealDB 2 needs record<...>
DEFINE FIELD connTypeParams ON TABLE AvailableModels TYPE array;
DEFINE FIELD connTypeParams.* ON TABLE AvailableModels TYPE record(ConnTypeParams);
DEFINE FIELD modelParams ON TABLE AvailableModels TYPE array;
DEFINE FIELD modelParams.* ON TABLE AvailableModels TYPE record(ModelParams);

COMMIT TRANSACTION;
