BEGIN TRANSACTION;

DEFINE TABLE ModelWeights SCHEMAFULL;
DEFINE FIELD uid ON TABLE ModelWeights TYPE uuid;
DEFINE INDEX order ON TABLE ModelWeights COLUMNS uid UNIQUE;
DEFINE FIELD name ON TABLE ModelWeights TYPE string ASSERT $value != NONE AND $value != NULL;
DEFINE FIELD weights ON TABLE ModelWeights TYPE array ASSERT $value != NONE AND $value != NULL;
DEFINE FIELD weights.* ON TABLE ModelWeights TYPE number;
DEFINE FIELD lastUpdated ON TABLE ModelWeights TYPE datetime ASSERT $value != NONE AND $value != NULL;

COMMIT TRANSACTION;
