# ruff: noqa
# Labelled corpus: py-sql-string-format.


def query(cursor, user_id, name, table):
    cursor.execute("SELECT * FROM users WHERE id = %s" % user_id)  # expect[py-sql-string-format]
    cursor.execute("DELETE FROM users WHERE name = '" + name + "'")  # expect[py-sql-string-format]
    cursor.execute(f"UPDATE users SET name = '{name}' WHERE id = {user_id}")  # expect[py-sql-string-format]
    cursor.execute("INSERT INTO {} VALUES (1)".format(table))  # expect[py-sql-string-format]
    sql = f"SELECT name FROM users WHERE id = {user_id}"  # expect[py-sql-string-format]
    cursor.execute("SELECT * FROM users WHERE id = %s", (user_id,))  # ok: parameters
    cursor.execute("SELECT * FROM users WHERE id = ?", [user_id])  # ok: parameters
    message = "Selected %s from the menu" % name  # ok: prose, not a statement
    return sql, message
