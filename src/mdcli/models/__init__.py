"""Networks: conditional NCSN++ teacher/student, ERA5 encoder, attention, classifiers."""
