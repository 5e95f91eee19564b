"""nbgrader configuration: this repository is an nbgrader course.

solutions/NN_name/NN_name.ipynb is the source (solutions and hidden tests);
notebooks/NN_name/NN_name.ipynb is the release students get (`make release`).
Grading state (gradebook.db, submitted/, autograded/, feedback/) is never committed.
"""

c = get_config()  # noqa: F821 (provided by nbgrader when it loads this file)

c.CourseDirectory.course_id = "attention-from-scratch"
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "notebooks"
c.CourseDirectory.db_url = "sqlite:///gradebook.db"

# The stub students see in place of a solution.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# A cell that runs longer than this is stopped (grading uses its own, shorter limit).
c.ExecutePreprocessor.timeout = 120
