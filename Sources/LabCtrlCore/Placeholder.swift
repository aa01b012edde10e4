enum LabCtrlCorePlaceholder {}
