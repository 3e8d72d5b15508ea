BEGIN TRANSACTION;

------------------------------------------------------------
-- resnet over ssh, with the password the Rust MER kept
LET $modelUID = <string> rand::uuid::v4();

CREATE type::thing("ConnTypeParams", $modelUID) CONTENT {
    uid: $modelUID,
    createdAt: time::now(),
    lastUpdated: time::now(),
    host: "gpu1.example.org",
    port: 22,
    user: "alice",
    pass: "s3cret",
} RETURN uid;

CREATE type::thing("ModelParams", $modelUID) CONTENT {
    uid: $modelUID,
    createdAt: time::now(),
    lastUpdated: time::now(),
    inferenceCommand: "conda activate vision && python3 infer.py",
    trainCommand: "python3 train.py --epochs 3",
    modelPath: "/srv/models/resnet",
    batchSize: 32,
} RETURN uid;

CREATE type::thing("AvailableModels", $modelUID) CONTENT {
    uid: $modelUID,
    createdAt: time::now(),
    lastUpdated: time::now(),
    name: "resnet",
    connType: "ssh",
    connTypeParams: array::add([], type::thing("ConnTypeParams", $modelUID)),
    modelParams: array::add([], type::thing("ModelParams", $modelUID)),
} RETURN uid;

------------------------------------------------------------
-- bert on the same host, port and user: one server for both
LET $modelUID = <string> rand::uuid::v4();

CREATE type::thing("ConnTypeParams", $modelUID) CONTENT {
    uid: $modelUID,
    createdAt: time::now(),
    lastUpdated: time::now(),
    host: "gpu1.example.org",
    port: 22,
    user: "alice",
} RETURN uid;

CREATE type::thing("ModelParams", $modelUID) CONTENT {
    uid: $modelUID,
    createdAt: time::now(),
    lastUpdated: time::now(),
    inferenceCommand: "python3 bert.py",
    modelPath: "/srv/models/bert",
} RETURN uid;

CREATE type::thing("AvailableModels", $modelUID) CONTENT {
    uid: $modelUID,
    createdAt: time::now(),
    lastUpdated: time::now(),
    name: "bert",
    connType: "ssh",
    connTypeParams: array::add([], type::thing("ConnTypeParams", $modelUID)),
    modelParams: array::add([], type::thing("ModelParams", $modelUID)),
} RETURN uid;

------------------------------------------------------------
-- chat twice: over ssh on another host and port, and locally
LET $modelUID = <string> rand::uuid::v4();

CREATE type::thing("ConnTypeParams", $modelUID) CONTENT {
    uid: $modelUID,
    createdAt: time::now(),
    lastUpdated: time::now(),
    host: "10.0.0.7",
    port: 2222,
    user: "bob",
} RETURN uid;

CREATE type::thing("ModelParams", $modelUID) CONTENT {
    uid: $modelUID,
    createdAt: time::now(),
    lastUpdated: time::now(),
    inferenceCommand: "python3 inference.py",
    modelPath: "/models/chat",
} RETURN uid;

CREATE type::thing("AvailableModels", $modelUID) CONTENT {
    uid: $modelUID,
    createdAt: time::now(),
    lastUpdated: time::now(),
    name: "chat",
    connType: "ssh",
    connTypeParams: array::add([], type::thing("ConnTypeParams", $modelUID)),
    modelParams: array::add([], type::thing("ModelParams", $modelUID)),
} RETURN uid;

LET $modelUID = <string> rand::uuid::v4();

CREATE type::thing("ConnTypeParams", $modelUID) CONTENT {
    uid: $modelUID,
    createdAt: time::now(),
    lastUpdated: time::now(),
} RETURN uid;

CREATE type::thing("ModelParams", $modelUID) CONTENT {
    uid: $modelUID,
    createdAt: time::now(),
    lastUpdated: time::now(),
    inferenceCommand: "python3 inference.py --local",
    modelPath: "/home/user/models/chat",
    temperature: 0.7,
} RETURN uid;

CREATE type::thing("AvailableModels", $modelUID) CONTENT {
    uid: $modelUID,
    createdAt: time::now(),
    lastUpdated: time::now(),
    name: "chat",
    connType: "local",
    connTypeParams: array::add([], type::thing("ConnTypeParams", $modelUID)),
    modelParams: array::add([], type::thing("ModelParams", $modelUID)),
} RETURN uid;

COMMIT TRANSACTION;
