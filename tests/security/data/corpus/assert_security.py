# ruff: noqa
# Labelled corpus: py-assert-security (asserts are stripped under python -O).


def delete_project(user, project):
    assert user.is_admin  # expect[py-assert-security]
    assert project.owner == user  # expect[py-assert-security]
    assert has_permission(user, "delete")  # expect[py-assert-security]
    assert len(project.items) >= 0  # ok: not a security decision
    assert isinstance(project, object)  # ok
    return project


def has_permission(who, what):
    return bool(who and what)
