node {
  name = "x"
  workers = 2
}
