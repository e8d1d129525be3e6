"""The public surface is pinned: a change to it is a decision, not an accident."""

import warroom


def test_exported_members() -> None:
    assert sorted(warroom.__all__) == sorted(
        [
            "AutomationEngine",
            "Execution",
            "StepFailedError",
            "StepMismatchError",
            "ConfigurationError",
            "ConflictError",
            "DatabaseError",
            "DatabaseUnreachableError",
            "IncompatibleBackupError",
            "InputError",
            "IntegrityError",
            "InvalidNameError",
            "NameTakenError",
            "NotFoundError",
            "StorageError",
            "WarroomError",
            "__version__",
        ]
    )
    for name in warroom.__all__:
        assert hasattr(warroom, name)


def test_error_tree_maps_exit_codes_and_statuses() -> None:
    assert (warroom.InputError.exit_code, warroom.InputError.http_status) == (2, 400)
    assert (warroom.IntegrityError.exit_code, warroom.IntegrityError.http_status) == (3, 422)
    assert (warroom.NotFoundError.exit_code, warroom.NotFoundError.http_status) == (2, 404)
    assert warroom.ConflictError.http_status == 409
    assert issubclass(warroom.NameTakenError, warroom.ConflictError)
    error = warroom.IntegrityError("damaged", part="data")
    assert error.to_dict() == {
        "code": "integrity",
        "message": "damaged",
        "details": {"part": "data"},
    }
