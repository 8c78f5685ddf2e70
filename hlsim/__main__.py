from hlsim.cli import main

main()
