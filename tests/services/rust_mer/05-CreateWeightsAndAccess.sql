BEGIN TRANSACTION;

-- Weights of resnet; a row for a model the catalog does not have
CREATE ModelWeights CONTENT {
    uid: <uuid> "0b7f4a52-5d0e-4c2b-9a47-3f1f0f6c2a01",
    name: "resnet",
    weights: [0.5, 1.5, -2.0],
    lastUpdated: d"2024-03-01T10:00:00Z",
};
CREATE ModelWeights CONTENT {
    uid: <uuid> "0b7f4a52-5d0e-4c2b-9a47-3f1f0f6c2a02",
    name: "ghost",
    weights: [1.0],
    lastUpdated: d"2024-03-01T10:00:00Z",
};

-- Who ran what, when
CREATE ModelAccess CONTENT {
    uid: <uuid> "5c1d2f3e-0000-4a00-8000-000000000001",
    requestUid: <uuid> "9e1d2f3e-0000-4a00-8000-000000000001",
    model: "resnet",
    startAccess: d"2024-03-02T09:00:00Z",
    stopAccess: d"2024-03-02T09:00:05Z",
};
CREATE ModelAccess CONTENT {
    uid: <uuid> "5c1d2f3e-0000-4a00-8000-000000000002",
    requestUid: <uuid> "9e1d2f3e-0000-4a00-8000-000000000002",
    model: "resnet",
    startAccess: d"2024-03-02T10:00:00Z",
    stopAccess: d"2024-03-02T10:00:02Z",
};
CREATE ModelAccess CONTENT {
    uid: <uuid> "5c1d2f3e-0000-4a00-8000-000000000003",
    requestUid: <uuid> "9e1d2f3e-0000-4a00-8000-000000000003",
    model: "chat",
    startAccess: d"2024-03-03T08:00:00Z",
    stopAccess: d"2024-03-03T08:01:00Z",
};

COMMIT TRANSACTION;
