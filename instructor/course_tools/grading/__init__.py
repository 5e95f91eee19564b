"""`python -m course_tools grade`: autograde a class's notebooks, sandboxed, into a gradebook.

grade runs the class; worker grades one submission in a process of its own, inside sandbox and
under memory; intake finds the submissions, course builds the nbgrader course, integrity watches
the files a submission must not change, flags lists code worth a look, report writes the
gradebook; bench times the whole (`python -m course_tools.grading.bench`).
"""
