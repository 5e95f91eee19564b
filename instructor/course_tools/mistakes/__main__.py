import sys

from course_tools.mistakes.run import main

sys.exit(main())
