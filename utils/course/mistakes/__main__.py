import sys

from utils.course.mistakes.run import main

sys.exit(main())
