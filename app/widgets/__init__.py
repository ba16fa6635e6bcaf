"""The pages' shared controls and page parts, each written once, one job a module.

chrome     a page's title and lesson, its source at the end, "nothing generated yet"
model      the model in use: the sidebar's status, the picker, "needs the run's model"
figures    every chart is drawn through here, so projector mode reaches all of them
controls   the step, layer, head, threshold, sink and window controls the views share
graph      the attention graph's controls: which lines, selection, why nothing is drawn
downloads  download buttons that survive other sessions' reruns
classroom  the sidebar's projector and quiz switches, and the "Share this view" box
training   the training lab's live, stoppable loop
atlas      the Atlas page's parts: the clicked token, the run on the map, "Build the map here"
"""
